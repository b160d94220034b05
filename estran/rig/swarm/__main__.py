"""`python -m estran.rig.swarm DIRS_FILE ...`: one swarm worker process."""

from estran.rig.swarm._worker import main

main()
