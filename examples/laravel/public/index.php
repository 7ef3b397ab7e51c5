<?php
echo "Hello from the example app\n";
