"""Record an expert episode to a video: ``python -m envs.push_t.record --seed 100000 --out x.gif``.

Policy episodes are recorded by the rollout command; both use :func:`record_video`.
"""

from __future__ import annotations

import argparse

from envs.push_t.expert_episode import run_expert_episode
from shortcut_policy.evaluation.video import record_video


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=100000)
    parser.add_argument("--out", default="docs/media/expert_push_t.gif", help=".gif or .mp4")
    parser.add_argument("--fps", type=int, default=10)
    parser.add_argument("--every", type=int, default=2, help="keep every n-th frame")
    args = parser.parse_args()
    episode = run_expert_episode(args.seed, frames=True)
    path = record_video(episode["frames"][:: args.every], args.out, fps=args.fps)
    print(
        f"seed {args.seed}: success={episode['success']} score={episode['score']:.3f} "
        f"length={episode['length']} -> {path}"
    )


if __name__ == "__main__":
    main()
