<?php
// Writes a line to the error log (STDERR through catch_workers_output / FastCGI) and answers.
error_log('switchyard-test-warning');
echo "warned\n";
