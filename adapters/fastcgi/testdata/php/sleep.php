<?php
// Sleeps ?s= seconds (at most 5) before answering.
sleep(min(5, (int)($_GET['s'] ?? 1)));
echo "awake\n";
