"""`python -m contig` runs the command-line interface."""

from contig.cli import main

raise SystemExit(main())
