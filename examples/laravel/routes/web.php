<?php
// Routes of the example app.
