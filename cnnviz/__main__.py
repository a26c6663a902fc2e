"""`python -m cnnviz ...`: the command-line tool."""

from cnnviz.cli import main

raise SystemExit(main())
