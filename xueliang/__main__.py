from xueliang.cli import main

raise SystemExit(main())
