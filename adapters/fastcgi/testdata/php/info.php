<?php
// Same report as the front controller, reached by its own name (/info.php/extra/path).
require __DIR__ . '/index.php';
