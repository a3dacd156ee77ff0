"""What people see: logging (text and JSON lines), the live panel and progress lines,
the closing messages of a run, and the status views."""
