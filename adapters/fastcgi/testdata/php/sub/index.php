<?php
// Directory index of /sub: the same report as the front controller.
require dirname(__DIR__) . '/index.php';
