"""`python -m platform_hook`: the same as the `platform-hook` console script."""

from platform_hook.main import main

raise SystemExit(main())
