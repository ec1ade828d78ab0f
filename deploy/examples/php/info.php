<?php
// phpinfo() page of the Switchyard PHP example (an example only: never expose phpinfo on a real site).
phpinfo(INFO_GENERAL | INFO_CONFIGURATION | INFO_VARIABLES);
