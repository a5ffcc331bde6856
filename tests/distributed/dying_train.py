"""The training entry point, with this process dying at a chosen step (for the tests only).

    DIE_AT_STEP=8 [DIE_RANK=1] python tests/distributed/dying_train.py task=... (hydra overrides)

Every rank dies at ``DIE_AT_STEP`` unless ``DIE_RANK`` names one; the exit is ``os._exit``, as
abrupt as a kill: no checkpoint, no clean-up.
"""

import os

import shortcut_policy.train as train_module

DIE_AT = int(os.environ["DIE_AT_STEP"])
DIE_RANK = os.environ.get("DIE_RANK")
real_step = train_module.train_step


def dying_step(run, batch):
    if run.step == DIE_AT and DIE_RANK in (None, str(run.rank.rank)):
        os._exit(17)
    return real_step(run, batch)


train_module.train_step = dying_step

if __name__ == "__main__":
    train_module.main()
