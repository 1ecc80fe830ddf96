"""Reports: the self-contained HTML study report and its sections."""
