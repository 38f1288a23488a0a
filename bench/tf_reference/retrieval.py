"""TFRS basic-retrieval-tutorial model on the fixed ML-100k split; metrics after every epoch.

Two towers: StringLookup(no mask)+Embedding(V+1,32) for users and for item ids (strings);
tfrs.tasks.Retrieval (in-batch softmax, summed CategoricalCrossentropy — TFRS defaults) with
FactorizedTopK over all catalogue items (candidates batched 128); Adagrad(0.1); batch 8192,
shuffled once with the seed, cached. After each epoch: TFRS factorized top-K accuracy on test
(evaluate, batch 4096) and full-ranking Recall/NDCG/HitRate computed in numpy with training
items masked out.
"""
import argparse
import statistics
import time

import common  # sets TF_USE_LEGACY_KERAS before TensorFlow loads
import numpy as np
import tensorflow as tf
import tensorflow_recommenders as tfrs

KS = (1, 5, 10, 50, 100)


class TwoTower(tfrs.Model):
    def __init__(self, users, items, dim=32, train_metrics=True):
        super().__init__()
        self.train_metrics = train_metrics
        self.user_model = tf.keras.Sequential([
            tf.keras.layers.StringLookup(vocabulary=users, mask_token=None),
            tf.keras.layers.Embedding(len(users) + 1, dim)])
        self.item_model = tf.keras.Sequential([
            tf.keras.layers.StringLookup(vocabulary=items, mask_token=None),
            tf.keras.layers.Embedding(len(items) + 1, dim)])
        candidates = tf.data.Dataset.from_tensor_slices(items).batch(128).map(self.item_model)
        self.task = tfrs.tasks.Retrieval(
            metrics=tfrs.metrics.FactorizedTopK(candidates=candidates, ks=KS))

    def compute_loss(self, features, training=False):
        u = self.user_model(features["user_id"])
        i = self.item_model(features["item_id"])
        # The tutorial computes the factorized metrics on training batches too (default);
        # --no-train-metrics skips that (same weights, faster epochs).
        return self.task(u, i, compute_metrics=self.train_metrics or not training)


def full_ranking(scores, train_mask, test_lists, ks=(10, 20)):
    """scores: [n_users, n_items]; train_mask bool same shape; test_lists: list of index arrays
    (one per user row; empty = user skipped). Ties broken by lower item index."""
    s = np.where(train_mask, -np.inf, scores.astype(np.float64))
    order = np.argsort(-s, axis=1, kind="stable")  # stable: equal scores keep lower index first
    kmax = max(ks)
    top = order[:, :kmax]
    disc = 1.0 / np.log2(np.arange(kmax) + 2.0)
    acc = {f"{m}@{k}": [] for k in ks for m in ("recall", "ndcg", "hit_rate")}
    for u, rel in enumerate(test_lists):
        if len(rel) == 0:
            continue
        hits = np.isin(top[u], rel)
        for k in ks:
            h = hits[:k]
            acc[f"recall@{k}"].append(h.sum() / len(rel))
            dcg = (h * disc[:k]).sum()
            idcg = disc[:min(k, len(rel))].sum()
            acc[f"ndcg@{k}"].append(dcg / idcg)
            acc[f"hit_rate@{k}"].append(float(h.any()))
    return {k: float(np.mean(v)) for k, v in acc.items()}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--data", default=common.DEFAULT_DATA)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--no-train-metrics", action="store_true")
    ap.add_argument("--tag", default="")
    ap.add_argument("--save-embeddings", metavar="NPZ",
                    help="write the final towers (users, items: ids; U, V: vectors) for another evaluator")
    args = ap.parse_args()
    common.set_threads(args.threads)
    tf.random.set_seed(args.seed)

    (tru, tri, _), (teu, tei, _), users, items = common.load_split(args.data)
    S = common.as_str
    train = tf.data.Dataset.from_tensor_slices({"user_id": S(tru), "item_id": S(tri)})
    test = tf.data.Dataset.from_tensor_slices({"user_id": S(teu), "item_id": S(tei)})
    train = train.shuffle(len(tru), seed=args.seed, reshuffle_each_iteration=False).batch(8192).cache()
    test = test.batch(4096).cache()

    # Index structures for the numpy full-ranking evaluation (rows = users, cols = items, by id order).
    uidx = {u: n for n, u in enumerate(users)}
    iidx = {i: n for n, i in enumerate(items)}
    nu, ni = len(users), len(items)
    train_mask = np.zeros((nu, ni), bool)
    train_mask[[uidx[u] for u in tru], [iidx[i] for i in tri]] = True
    test_sets = [set() for _ in range(nu)]
    for u, i in zip(teu, tei):
        test_sets[uidx[u]].add(iidx[i])
    test_lists = [np.array(sorted(s), dtype=np.int64) for s in test_sets]

    pop_scores = np.tile(train_mask.sum(0).astype(np.float64), (nu, 1))
    popularity = full_ranking(pop_scores, train_mask, test_lists)
    common.emit({"popularity": popularity})

    model = TwoTower(S(users), S(items), train_metrics=not args.no_train_metrics)
    model.compile(optimizer=tf.keras.optimizers.Adagrad(learning_rate=0.1))
    user_strs, item_strs = tf.constant(S(users)), tf.constant(S(items))

    epochs, secs = [], []
    for ep in range(1, args.epochs + 1):
        t0 = time.perf_counter()
        hist = model.fit(train, epochs=1, verbose=0)
        dt = time.perf_counter() - t0
        t1 = time.perf_counter()
        ev = model.evaluate(test, return_dict=True, verbose=0)
        ue = model.user_model(user_strs).numpy()
        ie = model.item_model(item_strs).numpy()
        fr = full_ranking(ue @ ie.T, train_mask, test_lists)
        rec = {"epoch": ep, "train_loss": float(hist.history["loss"][-1]),
               "topk_accuracy": {str(k): float(ev[f"factorized_top_k/top_{k}_categorical_accuracy"]) for k in KS},
               "full_ranking": fr, "train_seconds": dt, "eval_seconds": time.perf_counter() - t1}
        epochs.append(rec)
        secs.append(dt)
        common.emit(rec)

    if args.save_embeddings:
        np.savez(args.save_embeddings, users=users, items=items,
                 U=model.user_model(user_strs).numpy(), V=model.item_model(item_strs).numpy())
    out = {"model": "tfrs_basic_retrieval_tutorial", "seed": args.seed, "epochs": args.epochs,
           "versions": common.versions(), "popularity": popularity, "per_epoch": epochs,
           "median_train_seconds_per_epoch": statistics.median(secs),
           "train_metrics": not args.no_train_metrics,
           "note": "with train_metrics, train seconds include TFRS's factorized top-K metrics computed on "
                   "training batches (the tutorial's default); they do not affect the learned weights"}
    common.write_result(f"retrieval_seed{args.seed}{args.tag}.json", out)


if __name__ == "__main__":
    main()
