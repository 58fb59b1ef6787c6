"""Sample new MIDI files from a trained run (or the shipped default model)."""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "run",
        nargs="?",
        default=None,
        help="RUN dir written by `train` (default: the shipped model)",
    )
    parser.add_argument("-o", "--out", required=True, help="folder for the MIDI files")
    parser.add_argument("-n", "--n", type=int, default=4, help="number of samples (default 4)")
    parser.add_argument(
        "--max-tokens",
        type=int,
        default=1024,
        help="new tokens per sample; notes for note models (default 1024)",
    )
    parser.add_argument("--primer", help="MIDI file every sample continues")
    parser.add_argument("--primer-bars", type=int, help="use only the primer's first K bars")
    parser.add_argument("--temperature", type=float, default=1.0, help="0 = greedy (default 1)")
    parser.add_argument("--top-k", type=int, default=0, help="keep the k likeliest (0 = off)")
    parser.add_argument("--top-p", type=float, default=1.0, help="nucleus mass (1 = off)")
    parser.add_argument("--seed", type=int, help="makes the samples reproducible")
    parser.add_argument("--style", help="a label of the run's dataset (conditioned models)")
    parser.add_argument(
        "--grammar-mask",
        action="store_true",
        help="forbid tokens the tokenization's grammar does not allow",
    )
    parser.add_argument(
        "--noise",
        type=float,
        default=0.0,
        help="note models: noise on the time/velocity heads (default 0)",
    )
    parser.add_argument(
        "--window", type=int, help="context kept past the training length (default: the model's)"
    )
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda (default auto)")
    parser.add_argument(
        "--kv-cache",
        default="auto",
        choices=["auto", "float32", "float16"],
        help="transformer key/value cache dtype: auto = fp16 where the CPU kernel reads it "
        "(faster, logits within fp16 rounding), float32 = exact (default auto)",
    )
    parser.add_argument("--wav", action="store_true", help="also render WAV with FluidSynth")
    parser.add_argument("--png", action="store_true", help="also draw a piano-roll PNG")
    diffusion = parser.add_argument_group("diffusion runs")
    diffusion.add_argument(
        "--steps", type=int, help="DDIM with N steps (default: DDPM over all trained steps)"
    )
    diffusion.add_argument("--eta", type=float, default=0.0, help="DDIM noise, 0..1 (default 0)")
    diffusion.add_argument(
        "--guidance", type=float, default=1.0, help="guidance scale for --style (1 = none)"
    )
    diffusion.add_argument(
        "--number", type=int, default=1, help="windows per piece, joined by inpainting"
    )
    diffusion.add_argument(
        "--context", type=int, help="notes each new window keeps (default: half a window)"
    )
    diffusion.add_argument(
        "--fixed-time", type=float, help="put notes on a fixed grid of this many beats"
    )
    diffusion.add_argument("--trace", help="PNG of the first window being denoised")


def run(args: argparse.Namespace) -> int:
    from midiforge import api

    result = api.generate(
        args.run,
        out_dir=args.out,
        n=args.n,
        max_tokens=args.max_tokens,
        primer=args.primer,
        primer_bars=args.primer_bars,
        temperature=args.temperature,
        top_k=args.top_k,
        top_p=args.top_p,
        seed=args.seed,
        style=args.style,
        grammar_mask=args.grammar_mask,
        noise=args.noise,
        window=args.window,
        device=args.device,
        wav=args.wav,
        png=args.png,
        steps=args.steps,
        eta=args.eta,
        guidance=args.guidance,
        number=args.number,
        context=args.context,
        fixed_time=args.fixed_time,
        trace=args.trace,
        kv_cache=args.kv_cache,
    )
    print(result.summary())
    return 0
