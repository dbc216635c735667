"""The ``skdefect`` command."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence


def _cmd_plugins(args: argparse.Namespace) -> int:
    from .plugins import list_plugins

    entries = list_plugins()
    if args.kind:
        entries = [e for e in entries if e.kind == args.kind]
    width = max((len(e.name) for e in entries), default=4)
    print(f"{'name':<{width}}  {'kind':<8}  origin")
    for e in entries:
        print(f"{e.name:<{width}}  {e.kind:<8}  {e.origin}")
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from . import demo

    return demo.run(
        n_samples=args.n_samples,
        image_size=args.image_size,
        textures=tuple(t.strip() for t in args.textures.split(",") if t.strip()),
        out_dir=args.out,
        device=args.device,
        random_state=args.random_state,
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="skdefect",
        description="Deep surface-defect and anomaly detectors with a scikit-learn face.",
    )
    from . import __version__

    parser.add_argument("--version", action="version", version=f"skdefect {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    p = sub.add_parser("plugins", help="list every registered loss, sampler and backbone with its origin")
    p.add_argument("--kind", choices=["loss", "sampler", "backbone"], help="list one kind only")
    p.set_defaults(func=_cmd_plugins)

    p = sub.add_parser(
        "demo",
        help="train on the embedded synthetic surface-defect data and print a metrics table",
        description="Generates textured surfaces with synthetic defects (scikit-image textures), "
        "trains the detectors that are available and prints image-level metrics on a held-out split.",
    )
    p.add_argument("--n-samples", type=int, default=300, help="images to generate (default: 300)")
    p.add_argument("--image-size", type=int, default=48, help="side of the square images (default: 48)")
    p.add_argument(
        "--textures", default="brick",
        help="comma-separated scikit-image textures out of brick, grass, gravel (default: brick)",
    )
    p.add_argument("--out", default="skdefect-demo", help="folder for the outputs (default: ./skdefect-demo)")
    p.add_argument("--device", default="auto", help="'auto', 'cpu' or 'cuda' (default: auto)")
    p.add_argument("--random-state", type=int, default=0, help="seed (default: 0)")
    p.set_defaults(func=_cmd_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
