"""How to read posts past the window, measured on VALIDATION only.

The bundled posts are short (most fit the 128-token window), so the schemes are compared with the
window shrunk until many validation posts no longer fit: "truncate" (the old behaviour: the first
window only), "mean_logits" (each chunk classified alone, logits averaged) and "pool" (chunks
encoded, then mean and target attention over all their tokens, as one long sequence would be).

    python -m analysis.long_posts_check MODEL_DIR [--windows 24 32 48 128]
"""

from __future__ import annotations

import argparse
import json

from .dataset import load_dataset
from .evaluate import evaluate_predictions
from .stance import LONG_POSTS, FineTunedStance, labels_from_probabilities


def compare(model_dir: str, windows: list[int]) -> list[dict]:
    data = load_dataset()
    validation = data.split("validation")
    texts = [e.text for e in validation]
    gold = {t: [e.labels[t] for e in validation] for t in data.targets}
    rows = []
    for window in windows:
        for scheme in LONG_POSTS:
            backend = FineTunedStance.load(model_dir, precision="fp32", long_posts=scheme)
            backend.max_length = window
            backend.overlap = min(backend.overlap, (window - 2) // 4)
            lengths = [len(ids) + 2 for ids in backend.tokenize(texts)]
            probabilities = backend.predict(texts)
            predicted = {t: labels_from_probabilities(probabilities[t]) for t in data.targets}
            metrics = evaluate_predictions(gold, predicted, "validation")
            rows.append({"window": window, "scheme": scheme,
                         "share_past_window": round(sum(n > window for n in lengths) / len(lengths), 3),
                         **{f"{t}_macro_f1": round(m["macro_f1"], 3) for t, m in metrics.items()}})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model_dir")
    parser.add_argument("--windows", type=int, nargs="+", default=[24, 32, 48, 128])
    args = parser.parse_args()
    for row in compare(args.model_dir, args.windows):
        print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
