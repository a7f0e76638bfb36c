"""``python -m loadertune``."""

from loadertune.cli import main

raise SystemExit(main())
