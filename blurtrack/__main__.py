from blurtrack.cli import main

raise SystemExit(main())
