"""The command line: parse, check every option before anything is created, resolve the
run's options once, call the engine, print the outcome and map it to an exit code."""
