"""``python -m benchmark``: the command line. ``parser`` declares the arguments; ``running``, ``results`` and
``studies`` hold one small function per command, each checking its arguments and calling the packages that do the
work; ``main`` dispatches and turns what a user can fix into one ``error:`` line. Imports anything in ``benchmark``."""
