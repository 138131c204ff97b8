import sys

from benchmark.allocator import reexec_with_kept_memory

reexec_with_kept_memory(sys.argv[1:])  # before torch is imported: see benchmark/allocator.py

from benchmark.cli.main import main  # noqa: E402

sys.exit(main())
