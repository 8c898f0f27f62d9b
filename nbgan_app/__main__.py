import sys

from nbgan_app.cli import main

sys.exit(main())
