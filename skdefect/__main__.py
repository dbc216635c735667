from skdefect.cli import main

raise SystemExit(main())
