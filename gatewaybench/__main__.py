from gatewaybench.cli import main

raise SystemExit(main())
