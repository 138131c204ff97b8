"""A small synthetic Chinese product-search set, generated deterministically so the suite runs with no data at all.

Why synthetic and why this shape: the paper's argument is that product search needs *literal* matches (brand, model
number) and *expansion* (a query word the title does not contain: a synonym of the category, the other script of a brand
name). The demo set has both kinds of query, labelled, so a retriever's strengths show even at toy scale:

- ``literal`` queries name the brand and the exact model number found in the title;
- ``expansion`` queries name the brand in the other script (``Xiaomi`` for a title with ``小米``) and the category
  by a synonym the title does not use (``移动电话`` for ``手机``), plus attributes; exactly one product matches.

Files are written in the official Multi-CPR format, so the demo goes through the same loader as the real data.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
from pathlib import Path
from typing import Any

# category -> (synonyms, attribute pools, model-number prefixes)
CATEGORIES: dict[str, tuple[list[str], list[list[str]], list[str]]] = {
    "手机": (["智能手机", "移动电话", "5G手机"], [["8GB+128GB", "12GB+256GB", "16GB+512GB"], ["黑色", "白色", "蓝色", "紫色"]], ["Mate", "P", "K", "Nova", "Reno"]),
    "笔记本电脑": (["手提电脑", "笔记本", "轻薄本"], [["i5", "i7", "R7"], ["16G", "32G"], ["14英寸", "16英寸"]], ["ThinkBook", "X", "Air", "Pro"]),
    "电视": (["电视机", "液晶电视", "智能电视"], [["55英寸", "65英寸", "75英寸"], ["4K", "8K"]], ["E", "Q", "U", "S"]),
    "耳机": (["蓝牙耳机", "耳麦", "无线耳机"], [["降噪", "运动"], ["黑色", "白色", "粉色"]], ["WH", "Buds", "FreeBuds", "WF"]),
    "冰箱": (["电冰箱", "冷藏柜", "双开门冰箱"], [["300升", "450升", "520升"], ["一级能效", "二级能效"]], ["BCD", "FR", "R"]),
    "洗衣机": (["滚筒洗衣机", "波轮洗衣机", "洗烘一体机"], [["8公斤", "10公斤", "12公斤"], ["变频", "定频"]], ["XQG", "TG", "MG"]),
    "空调": (["挂机空调", "柜机", "冷暖空调"], [["1.5匹", "2匹", "3匹"], ["一级能效", "三级能效"]], ["KFR", "GL", "Y"]),
    "运动鞋": (["跑步鞋", "球鞋", "休闲鞋"], [["40码", "42码", "44码"], ["黑色", "白色", "红色"]], ["Air", "Ultra", "Boost", "Way"]),
    "背包": (["双肩包", "书包", "旅行包"], [["20L", "30L", "40L"], ["黑色", "灰色", "蓝色"]], ["B", "T", "Pack"]),
    "保温杯": (["水杯", "焖烧杯", "真空杯"], [["350ml", "500ml", "750ml"], ["白色", "粉色", "绿色"]], ["JNL", "TC", "SW"]),
    "吸尘器": (["除螨仪", "扫地机", "手持吸尘器"], [["无线", "有线"], ["大吸力", "静音"]], ["V", "G", "H"]),
    "电饭煲": (["电饭锅", "饭煲", "智能电饭煲"], [["3升", "4升", "5升"], ["IH加热", "底盘加热"]], ["FB", "RC", "CF"]),
}

# brand (Chinese, Latin) -> categories it sells
BRANDS: list[tuple[str, str, list[str]]] = [
    ("华为", "HUAWEI", ["手机", "笔记本电脑", "耳机", "电视"]),
    ("小米", "Xiaomi", ["手机", "笔记本电脑", "耳机", "电视", "电饭煲", "吸尘器", "背包"]),
    ("苹果", "Apple", ["手机", "笔记本电脑", "耳机"]),
    ("联想", "Lenovo", ["笔记本电脑", "耳机"]),
    ("索尼", "Sony", ["电视", "耳机", "手机"]),
    ("海尔", "Haier", ["冰箱", "洗衣机", "空调", "电视"]),
    ("美的", "Midea", ["冰箱", "洗衣机", "空调", "电饭煲", "吸尘器"]),
    ("格力", "Gree", ["空调", "冰箱"]),
    ("耐克", "Nike", ["运动鞋", "背包"]),
    ("阿迪达斯", "adidas", ["运动鞋", "背包"]),
    ("李宁", "LiNing", ["运动鞋", "背包"]),
    ("膳魔师", "THERMOS", ["保温杯"]),
    ("象印", "ZOJIRUSHI", ["保温杯", "电饭煲"]),
    ("戴森", "Dyson", ["吸尘器"]),
    ("飞利浦", "Philips", ["吸尘器", "电视", "耳机"]),
    ("九阳", "Joyoung", ["电饭煲"]),
]

FILLERS = ["官方正品", "新款", "2024款", "包邮", "旗舰店", "限时特惠", "国行", "顺丰发货"]


def generate_demo(seed: int = 13, products: int = 2000, train_queries: int = 1600, dev_queries: int = 400,
                  model_numbers: int = 99) -> dict[str, Any]:
    """Return {corpus, train, dev} with queries as (qid, text, pid, kind) rows; same arguments -> same output.

    ``model_numbers`` bounds the number in a model name (``Mate60``); the scale datasets raise it so that a million
    distinct products exist (the demo's 99 allows ~80k).
    """
    rng = random.Random(seed)
    corpus: dict[str, str] = {}
    facts: dict[str, dict[str, Any]] = {}
    used_models: set[str] = set()
    while len(corpus) < products:
        brand_cn, brand_en, cats = rng.choice(BRANDS)
        category = rng.choice(cats)
        synonyms, attr_pools, prefixes = CATEGORIES[category]
        model = f"{rng.choice(prefixes)}{rng.randint(1, model_numbers)}{rng.choice(['', '', 'Pro', 'Max', 'S', 'Plus'])}"
        if (brand_en, model) in used_models:
            continue
        used_models.add((brand_en, model))
        attrs = [rng.choice(pool) for pool in attr_pools]
        title_brand = brand_cn if rng.random() < 0.5 else brand_en
        title_category = category if rng.random() < 0.7 else rng.choice(synonyms)
        parts = [title_brand, model, title_category, *attrs, *rng.sample(FILLERS, 2)]
        pid = f"d{len(corpus):05d}"
        corpus[pid] = " ".join(parts)
        facts[pid] = {
            "brand_cn": brand_cn, "brand_en": brand_en, "title_brand": title_brand, "model": model,
            "category": category, "title_category": title_category, "attrs": attrs,
        }

    # expansion queries must identify exactly one product by (brand, category, attributes)
    signature: dict[tuple, list[str]] = {}
    for pid, f in facts.items():
        signature.setdefault((f["brand_en"], f["category"], tuple(f["attrs"])), []).append(pid)

    # one literal and (where the product is identifiable without its model number) one expansion candidate each
    rows: list[tuple[str, str, str]] = []
    for pid in corpus:
        f = facts[pid]
        brand = f["brand_cn"] if rng.random() < 0.5 else f["brand_en"]
        text = f"{brand}{f['model']}" if rng.random() < 0.5 else f"{brand} {f['model']} {f['category']}"
        rows.append((text, pid, "literal"))
        if len(signature[(f["brand_en"], f["category"], tuple(f["attrs"]))]) == 1:
            other_brand = f["brand_en"] if f["title_brand"] == f["brand_cn"] else f["brand_cn"]
            synonyms = [s for s in CATEGORIES[f["category"]][0] + [f["category"]] if s != f["title_category"]]
            rows.append((" ".join([other_brand, rng.choice(synonyms), *f["attrs"]]), pid, "expansion"))
    rng.shuffle(rows)
    rows = rows[: train_queries + dev_queries]
    if len(rows) < train_queries + dev_queries:
        raise ValueError(f"demo generator made only {len(rows)} queries; ask for fewer or for more products")
    queries = [(f"q{i:05d}", text, pid, kind) for i, (text, pid, kind) in enumerate(rows)]
    return {"corpus": corpus, "train": queries[:train_queries], "dev": queries[train_queries:]}


def materialize_demo(params: dict[str, Any], root: Path | None = None) -> Path:
    """Write the demo set in Multi-CPR format under the cache (once per parameter set) and return its folder."""
    from retrievers.resources.cache import cache_dir, publish_folder

    params = {k: params[k] for k in ("seed", "products", "train_queries", "dev_queries", "model_numbers")
              if k in params}
    key = hashlib.sha256(json.dumps(params, sort_keys=True).encode()).hexdigest()[:12]
    directory = (root or cache_dir() / "data") / f"demo-{key}"
    if (directory / "DONE").exists():
        return directory
    data = generate_demo(**params)
    tmp = directory.with_name(directory.name + f".tmp{os.getpid()}")
    tmp.mkdir(parents=True, exist_ok=True)
    with open(tmp / "corpus.tsv", "w", encoding="utf-8") as fh:
        fh.writelines(f"{pid}\t{text}\n" for pid, text in data["corpus"].items())
    for split, stem in (("train", "train"), ("dev", "dev")):
        with open(tmp / f"{stem}.query.txt", "w", encoding="utf-8") as q, open(tmp / f"qrels.{stem}.tsv", "w") as r:
            for qid, text, pid, _ in data[split]:
                q.write(f"{qid}\t{text}\n")
                r.write(f"{qid}\t0\t{pid}\t1\n")
    with open(tmp / "query_kinds.json", "w", encoding="utf-8") as fh:
        json.dump({qid: kind for split in ("train", "dev") for qid, _, _, kind in data[split]}, fh)
    (tmp / "DONE").write_text("ok\n")
    publish_folder(tmp, directory)  # another process may have finished first: theirs is the same data
    return directory
