<?php
namespace App\Http;

final class Kernel
{
}
