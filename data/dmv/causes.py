"""Cause categories of disengagements, from their free-text descriptions (scikit-learn).

Seeded clustering: the descriptions are embedded with TF-IDF and grouped by k-means whose
starting centres are the TF-IDF vectors of a small documented keyword taxonomy
(:data:`SEEDS`), so each cluster keeps the name of the seed it grew from while its
membership and top terms come from the data. Clustering runs on the *distinct*
descriptions, each counted once: a sentence one filer repeats thousands of times is one
point, not thousands, and cannot pull the categories toward itself.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

#: Seed keywords of each cause category (the documented taxonomy; docs/dmv.md).
SEEDS: dict[str, str] = {
    "perception": "perception detection detect object lidar camera sensor false positive missed classification",
    "prediction and planning": "planning planner trajectory prediction predicted path maneuver decision route",
    "lane and localization": "lane boundary localization map lane keeping lane change road boundary line",
    "vehicle control and hardware": "control steering brake braking throttle hardware fault software system error",
    "other road users": "pedestrian cyclist bicycle vehicle cut in merging emergency vehicle traffic",
    "driver precaution": "precaution precautionary caution safety driver judged discomfort uncomfortable",
    "road and weather": "debris construction weather rain road condition work zone obstacle",
    "operations and retrieval": "retrieval remote operator stop recovery test end of route",
}


def categorize(descriptions: Sequence[str], *, seed: int = 0, top_terms: int = 8, examples: int = 3) -> dict:
    """Cause category of every description, and each category's top terms and examples.

    Returns
    -------
    dict
        ``labels`` (one category per input, ``"no description"`` for blanks) and
        ``categories``: {name: {"distinct_descriptions", "events", "top_terms", "examples"}}.
    """
    from sklearn.cluster import KMeans
    from sklearn.feature_extraction.text import TfidfVectorizer

    texts = [" ".join((d or "").split()) for d in descriptions]
    keys = [t.casefold() for t in texts]
    distinct = sorted({k for k in keys if k})
    names = list(SEEDS)
    if len(distinct) < len(names):
        labels = ["uncategorised" if k else "no description" for k in keys]
        return {"labels": labels, "categories": {}}
    # Terms in more than a fifth of the distinct descriptions are one filer's boilerplate ("Conditions:
    # non-inclement weather, dry roads"), not causes.
    vec = TfidfVectorizer(stop_words="english", sublinear_tf=True, max_df=0.2, max_features=20000)
    x = vec.fit_transform(distinct)
    init = vec.transform([SEEDS[n] for n in names]).toarray()
    # A seed with no word in the vocabulary starts at a data point instead of the origin.
    empty = np.flatnonzero(init.sum(axis=1) == 0)
    rng = np.random.default_rng(seed)
    for i in empty:
        init[i] = x[int(rng.integers(x.shape[0]))].toarray()[0]
    km = KMeans(n_clusters=len(names), init=init, n_init=1, random_state=seed, max_iter=100).fit(x)
    cluster_of = dict(zip(distinct, km.labels_.tolist(), strict=True))
    labels = [names[cluster_of[k]] if k else "no description" for k in keys]
    terms = np.asarray(vec.get_feature_names_out())
    dist = km.transform(x)
    first = dict(zip(reversed(keys), reversed(texts), strict=True))  # each key's first spelling
    counts = {n: 0 for n in names}
    for label in labels:
        if label in counts:
            counts[label] += 1
    categories = {}
    for c, name in enumerate(names):
        members = np.flatnonzero(km.labels_ == c)
        if not len(members):
            continue
        order = members[np.argsort(dist[members, c])][:examples]
        categories[name] = {
            "distinct_descriptions": len(members),
            "events": counts[name],
            "top_terms": terms[np.argsort(km.cluster_centers_[c])[::-1][:top_terms]].tolist(),
            "examples": [first[distinct[i]] for i in order],
        }
    return {"labels": labels, "categories": categories}
