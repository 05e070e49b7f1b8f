import sys

from render_server.packages.builtin.cli import main

sys.exit(main())
