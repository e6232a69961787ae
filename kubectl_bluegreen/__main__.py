import sys

from kubectl_bluegreen.cli import main

sys.exit(main())
