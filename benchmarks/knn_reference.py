#!/usr/bin/env python3
"""FAISS's counterpart of goselfsup's exhaustive inner-product search (evaluators.TopK), for
benchmarks.

  knn_reference.py search DIR K
      read DIR/db.npy and DIR/q.npy (float32, one vector a row), search the K largest inner
      products of each query with faiss.IndexFlatIP on every core, write the indices to
      DIR/faiss_i.npy (int64) and print a JSON line with the seconds taken
"""
import json
import os
import sys
import time

import faiss
import numpy as np


def main():
    if len(sys.argv) != 4 or sys.argv[1] != "search":
        sys.exit(__doc__)
    d, k = sys.argv[2], int(sys.argv[3])
    db = np.load(os.path.join(d, "db.npy"))
    q = np.load(os.path.join(d, "q.npy"))
    t0 = time.perf_counter()
    index = faiss.IndexFlatIP(db.shape[1])
    index.add(db)
    t1 = time.perf_counter()
    _, ids = index.search(q, k)
    t2 = time.perf_counter()
    np.save(os.path.join(d, "faiss_i.npy"), ids.astype(np.int64))
    print(json.dumps({"add_seconds": t1 - t0, "search_seconds": t2 - t1, "threads": faiss.omp_get_max_threads(),
                      "faiss": faiss.__version__}))


if __name__ == "__main__":
    main()
