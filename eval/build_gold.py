"""Write eval/gold.jsonl: the hand-written gold questions over seeds/, checked, with the dev/test split.

Run from the repository root:  python eval/build_gold.py
The questions below are the source of truth; gold.jsonl is regenerated from them. Before writing, every
answer is checked to occur verbatim in a supporting seed, every supporting seed to hold one of the answers,
and the probe terms of each unanswerable question to occur in no seed. Ids follow the order below
(s001, s002, ...); the split is :func:`rag.squad.assign_splits` (stratified by type and answerability).
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from rag.squad import GoldItem, assign_splits, write_gold  # noqa: E402

SEEDS = ROOT / "seeds"
OUT = ROOT / "eval" / "gold.jsonl"

D0 = "000_0ad6adc2e8399668.txt"  # Global Times: Western alliance talks, analysts (He Weiwen)
D1 = "001_9d22b42193b165a8.txt"  # Summary article (the text appears twice in the file)
D2 = "002_63d4e5e4138142a5.txt"  # Global Times, Feb 4 2026: Lin Jian, Burgum (shares paragraphs with 000)
D3 = "003_8f3eb98a15b3566d.txt"  # "US Quest For Rare Earth Minerals"
D4 = "004_237733e5469944db.txt"  # Rare Earth Exchanges commentary on The Guardian's report

# (type, question, acceptable answers, supporting docs)
ANSWERABLE: list[tuple[str, str, list[str], list[str]]] = [
    # --- who
    (
        "who",
        "Which Center for China and Globalization expert did the Global Times interview?",
        ["He Weiwen"],
        [D0],
    ),
    (
        "who",
        "Who answered questions on the EU-US minerals partnership for China's foreign ministry?",
        ["Lin Jian"],
        [D2],
    ),
    (
        "who",
        "Who is the spokesman of China's commerce ministry quoted on export licences?",
        ["He Yadong"],
        [D0, D2],
    ),
    (
        "who",
        "Who said the US-led trading club would set a floor price for minerals?",
        ["Doug Burgum", "Burgum", "US Interior Secretary Doug Burgum"],
        [D2],
    ),
    ("who", "Which US official is hosting the ministers' gathering?", ["Marco Rubio", "Rubio"], [D1]),
    (
        "who",
        "Which Guardian reporter wrote the original story on the minerals summit?",
        ["Lisa O’Carroll"],
        [D4],
    ),
    (
        "who",
        "Which researcher at a Beijing steel think tank said engaging with China cannot be avoided?",
        ["Wang Guoqing"],
        [D2],
    ),
    (
        "who",
        "Which Fudan University academic doubted that the US is a dependable partner for Europe?",
        ["Jian Junbo"],
        [D2],
    ),
    (
        "who",
        "Who opposed guaranteeing a minimum price for critical minerals?",
        ["Washington", "the US", "US"],
        [D0, D1, D4],
    ),
    ("who", "Who founded the Rare Earth Exchanges website?", ["Daniel"], [D4]),
    (
        "who",
        "Whose stockpiling approach is Australia's new reserve said to copy?",
        ["Japan", "Japan’s long-standing stockpiling model"],
        [D4],
    ),
    # --- which
    (
        "which",
        "Which news agency said roughly 30 countries want to join the US-led minerals club?",
        ["Reuters"],
        [D2],
    ),
    (
        "which",
        "Which outlet reported that the EU would pitch a partnership meant to limit Chinese influence?",
        ["Bloomberg"],
        [D2],
    ),
    (
        "which",
        "Which newspaper first reported the ministers' meeting in Washington?",
        ["The Guardian", "Guardian"],
        [D0, D2, D4],
    ),
    (
        "which",
        "Which territory has the US administration signalled it wants to buy?",
        ["Greenland"],
        [D2, D3],
    ),
    ("which", "Which EU member state does Greenland belong to?", ["Denmark"], [D2]),
    (
        "which",
        "Besides the G7 and the listed allies, which country may also attend the Washington summit?",
        ["Argentina", "possibly Argentina"],
        [D0],
    ),
    (
        "which",
        "Which island is at the centre of the recent friction between Japan and China?",
        ["Taiwan"],
        [D3],
    ),
    (
        "which",
        "Which Chinese government body said some exporters' licence applications were approved?",
        ["Ministry of Commerce", "China's Ministry of Commerce"],
        [D0, D2],
    ),
    (
        "which",
        "Which think tank does He Weiwen work for?",
        ["Center for China and Globalization", "the Center for China and Globalization"],
        [D0],
    ),
    (
        "which",
        "Which capital is building up a minerals reserve without waiting for US price guarantees?",
        ["Canberra"],
        [D4],
    ),
    (
        "which",
        "Which war is the scale of the needed industrial effort compared with?",
        ["World War II", "WWII"],
        [D4],
    ),
    ("which", "Which country is the world's top rare earth producer?", ["China"], [D1, D2]),
    (
        "which",
        "Which materials has China repeatedly restricted the export of, according to Rare Earth Exchanges?",
        ["rare earths, gallium, antimony", "rare earths, gallium, antimony, and related materials"],
        [D4],
    ),
    (
        "which",
        "Which administration does Rare Earth Exchanges credit with doing the most on critical minerals?",
        ["The Trump administration", "Trump administration", "Trump"],
        [D4],
    ),
    (
        "which",
        "Which governments are sending ministers to the Washington talks?",
        [
            "the US, EU, the UK, Japan, Australia and New Zealand",
            "US, UK, EU, Japan, Australia, and New Zealand",
            "US, EU, UK, Japan, Australia, and New Zealand",
        ],
        [D0, D1, D2],
    ),
    (
        "which",
        "Which tariffs does the EU want Washington to withdraw?",
        ["global steel derivative tariffs", "steel derivative tariffs"],
        [D0],
    ),
    (
        "which",
        "Which partners might have to build supply chains separate from the US-led effort?",
        ["non-NATO allies"],
        [D3],
    ),
    (
        "what",
        "What is blamed for the damage to transatlantic ties?",
        [
            "the Trump era",
            "Trump era",
            "a year of conflict with US",
            "a year of conflict with the US administration",
            "a year of conflict",
        ],
        [D0, D1, D2],
    ),
    # --- when
    (
        "when",
        "When did Beijing introduce export controls on medium and heavy rare earth items?",
        ["April last year", "In April last year", "last April"],
        [D0, D1, D2],
    ),
    (
        "when",
        "On what date did China's commerce ministry say some licence applications had been approved?",
        ["December 18", "On December 18"],
        [D0, D2],
    ),
    ("when", "When did the US and Australia sign their rare earth agreement?", ["last October"], [D0, D2]),
    (
        "when",
        "When was the Global Times story about politicized minerals groupings published?",
        ["Feb 04, 2026", "Feb 04, 2026 05:44 PM"],
        [D2],
    ),
    (
        "when",
        "When did The Guardian publish Lisa O'Carroll's piece on the alliance?",
        ["February 1, 2026"],
        [D4],
    ),
    ("when", "When was the Rare Earth Exchanges platform launched?", ["late 2024", "in late 2024"], [D4]),
    (
        "when",
        "On which weekday did The Guardian report the upcoming meeting, per the Global Times?",
        ["Sunday", "on Sunday"],
        [D0],
    ),
    ("when", "On what day did Bloomberg report the EU's partnership pitch?", ["Tuesday", "on Tuesday"], [D2]),
    (
        "when",
        "When were US mining executives told not to count on government price support?",
        ["earlier January", "January"],
        [D0],
    ),
    (
        "when",
        "When did Reuters report that Washington had backed away from the minimum price idea?",
        ["last week"],
        [D0],
    ),
    (
        "when",
        "On what day did the Chinese foreign ministry spokesman comment on the EU-US plan?",
        ["Wednesday", "on Wednesday"],
        [D2],
    ),
    # --- how long
    (
        "how_long",
        "How long does the EU give itself to draw up a joint roadmap with the US?",
        ["within three months", "three months"],
        [D2],
    ),
    (
        "how_long",
        "How long has Rare Earth Exchanges been calling for a multinational industrial alliance?",
        ["since its launch in late 2024"],
        [D4],
    ),
    # --- where
    (
        "where",
        "Where are the ministers meeting to discuss the minerals alliance?",
        ["Washington", "in Washington"],
        [D0, D1, D2, D4],
    ),
    (
        "where",
        "In which city is the Lange Steel Information Research Center?",
        ["Beijing", "Beijing-based"],
        [D2],
    ),
    (
        "where",
        "At which university is the Center for China-Europe Relations?",
        ["Fudan University", "Fudan"],
        [D2],
    ),
    ("where", "Where was the first 2026 innovation salon on rare earth magnets held?", ["Baotou"], [D4]),
    (
        "where",
        "Where did senior US officials brief minerals executives in January?",
        ["at a closed-door meeting", "a closed-door meeting", "closed-door meeting"],
        [D0],
    ),
    (
        "where",
        "Where does the US hope to exploit rare earth deposits despite its allies' opposition?",
        ["Greenland"],
        [D3],
    ),
    (
        "where",
        "Where did Lin Jian make his comments on the minerals partnership?",
        ["at a regular press conference", "a regular press conference", "regular press conference"],
        [D2],
    ),
    ("where", "Where does Europe get most of its permanent magnets from?", ["China", "from China"], [D1, D4]),
    # --- how much
    (
        "how_much",
        "How much money is Australia putting into its critical minerals reserve?",
        ["$1.2 billion", "A$1.2 billion", "1.2 billion"],
        [D1, D4],
    ),
    (
        "how_much",
        "What is the EU's yearly demand for permanent magnets?",
        ["20,000 tonnes", "roughly 20,000 tonnes", "20,000"],
        [D1, D4],
    ),
    (
        "how_much",
        "What quantity of Europe's permanent magnets is imported from China each year?",
        ["17,000–18,000 tonnes", "over 17,000 tonnes", "17,000 tonnes"],
        [D1, D4],
    ),
    # --- how many
    (
        "how_many",
        "How many countries are expected to take part in the Washington summit?",
        ["around 20 countries", "around 20", "20 countries", "nearly 20"],
        [D0, D4],
    ),
    (
        "how_many",
        "How many countries reportedly want to join the US-led minerals trading club?",
        ["about 30 countries", "about 30", "some 30 countries", "30 countries"],
        [D2],
    ),
    (
        "how_many",
        "How many categories of rare-earth items fell under China's export controls?",
        ["seven categories", "seven"],
        [D0, D2],
    ),
    (
        "how_many",
        "How many foreign ministers were said to be meeting on the day Lin Jian spoke?",
        ["dozens", "dozens of foreign ministers"],
        [D2],
    ),
    # --- what
    ("what", "What minerals will Australia's strategic reserve include?", ["antimony and gallium"], [D0, D1]),
    (
        "what",
        "What is the G7's earlier minerals initiative called?",
        ["critical minerals production alliance"],
        [D0, D2],
    ),
    (
        "what",
        "What kind of agreement is the EU ready to sign with the US?",
        ["memorandum of understanding", "a memorandum of understanding"],
        [D2],
    ),
    (
        "what",
        "What is the name of the plan the EU and US would draw up together?",
        ["Strategic Partnership Roadmap"],
        [D2],
    ),
    (
        "what",
        "According to He Weiwen, what is the real bottleneck in the rare earth supply chain?",
        [
            "a lack of high-standard refining capacity",
            "lack of high-standard refining capacity",
            "high-standard refining capacity",
            "refining capacity",
        ],
        [D0],
    ),
    (
        "what",
        "What everyday products could the steel-content tariffs hit?",
        ["aluminum doors to hair straighteners", "from aluminum doors to hair straighteners"],
        [D1],
    ),
    (
        "what",
        "What industry depends on the permanent magnets Europe imports?",
        ["high-tech manufacturing"],
        [D1],
    ),
    (
        "what",
        "According to He Weiwen, what kind of restriction has China stopped short of on rare-earth exports?",
        ["a blanket ban", "blanket ban"],
        [D0],
    ),
    (
        "what",
        "What tool has China promoted to ease legitimate trade in dual-use items?",
        ["general licenses"],
        [D0, D2],
    ),
    (
        "what",
        "What industry would another proposed Western bloc focus on?",
        ["steel", "steel-focused bloc", "a proposed steel-focused bloc"],
        [D0, D2],
    ),
    (
        "what",
        "What happened to Australian mining shares when Washington backed off price guarantees?",
        ["downward", "equity sell-offs", "sell-offs"],
        [D1, D4],
    ),
    (
        "what",
        "What does Rare Earth Exchanges say the summit shows growing acceptance of?",
        [
            "a security premium for rare earth refining",
            "security premium for rare earth refining",
            "security premium",
        ],
        [D4],
    ),
    (
        "what",
        "What does the Rare Earth Exchanges author say is indispensable if non-China refining is to grow?",
        ["pricing mechanisms", "price certainty"],
        [D4],
    ),
    (
        "what",
        "What kind of trade would members of the US-led club enjoy?",
        ["tariff-free trade", "tariff-free"],
        [D2],
    ),
    (
        "what",
        "What kind of G7 ministers took part in the US-hosted meeting on rare earths?",
        ["finance ministers", "G7 finance ministers"],
        [D3],
    ),
    (
        "what",
        "What principles did China's foreign ministry urge countries to respect?",
        [
            "the principles of market economy and international economic and trade rules",
            "principles of market economy",
            "market economy",
        ],
        [D2],
    ),
    (
        "what",
        "What is dependence on China for magnets now seen as, rather than a trade inconvenience?",
        ["a national-security liability", "national-security liability", "a national security liability"],
        [D4],
    ),
    (
        "what",
        "What does the success of the US-led rare earth initiative hinge on, according to analysts?",
        ["the countries’ long-term investment and commitment", "long-term investment and commitment"],
        [D3],
    ),
    (
        "what",
        "How do the allies at the meeting see China's behaviour on rare earth exports?",
        ["acting coercively", "acting coercively to control exports of critical rare earth minerals"],
        [D3],
    ),
    (
        "what",
        "What does China's grip on rare earths threaten, according to the US Quest article?",
        ["U.S. global economic power", "a direct threat to U.S. global economic power"],
        [D3],
    ),
]

# (type, question, probe terms that occur in no seed, case-insensitive): the corpus cannot answer these.
UNANSWERABLE: list[tuple[str, str, list[str]]] = [
    (
        "how_much",
        "What is the current price of neodymium oxide per kilogram?",
        ["neodymium", "kilogram", "/kg"],
    ),
    ("how_much", "How much gallium did China export last year?", ["tonnes of gallium", "gallium export"]),
    ("who", "Who is Australia's minister for resources?", ["minister for", "resources minister"]),
    ("which", "Which company runs Australia's largest rare earth mine?", ["Lynas", "largest"]),
    ("how_many", "How many tonnes of rare earths does China mine each year?", ["tonnes of rare", "million"]),
    (
        "how_much",
        "What share of its rare earth demand does the EU want to refine at home by 2030?",
        ["2030", "%", "percent", "per cent"],
    ),
    ("who", "Who represented India at the Washington minerals meeting?", ["India's", "Indian minister"]),
    ("where", "Where is the largest rare earth mine in the United States?", ["Mountain Pass", "California"]),
    (
        "how_much",
        "How much money has Congress set aside for a minimum price mechanism?",
        ["Congress ", "appropriat", "million"],
    ),
    ("how_much", "What floor price per tonne did Burgum propose?", ["per tonne", "a tonne", "/t "]),
    ("when", "When did Japan start stockpiling critical minerals?", ["Japan began", "since 19", "since 20"]),
    (
        "how_many",
        "How many permanent magnets does the US import from China each year?",
        ["US imports", "America imports", "US consumes"],
    ),
    ("who", "Who is Japan's new leader?", ["Takaichi", "Prime Minister", "premier"]),
    (
        "how_much",
        "By how much did Australian mining stocks fall after the Reuters report?",
        ["%", "percent", "fell by"],
    ),
    (
        "when",
        "When was the G7 critical minerals production alliance set up?",
        ["established in", "launched in"],
    ),
    (
        "which",
        "Which British minister is attending the Washington talks?",
        ["British minister", "UK minister"],
    ),
    (
        "how_many",
        "How many rare earth refineries operate outside China?",
        ["refineries operate", "refineries outside"],
    ),
    ("how_much", "How much funding does Project Vault have?", ["Vault fund", "Vault budget", "million"]),
    ("where", "Where will the next critical minerals summit be held?", ["next summit", "next meeting"]),
    (
        "how_many",
        "How many general licence applications has China approved so far?",
        ["applications have been approved", "approved applications"],
    ),
    (
        "how_long",
        "How long will China's export controls on rare earths stay in force?",
        ["until", "expire", "lifted"],
    ),
    (
        "how_much",
        "What percentage of global rare earth refining does China control?",
        ["%", "percent", "per cent"],
    ),
    (
        "how_long",
        "How long does it take to bring a new rare earth refinery online?",
        ["years to build", "take years", "months to build"],
    ),
    ("what", "What is the proposed steel alliance going to be called?", ["steel alliance", "named"]),
    ("what", "What is gallium mainly used for?", ["gallium is used", "used for", "used in"]),
    ("which", "Which country holds the G7 presidency this year?", ["presidency", "G7 chair"]),
    (
        "where",
        "Where will Australia store its critical minerals reserve?",
        ["stored", "warehouse", "storage"],
    ),
]


def build() -> list[GoldItem]:
    texts = {p.name: p.read_text(encoding="utf-8") for p in sorted(SEEDS.glob("*.txt"))}
    problems: list[str] = []
    rows: list[dict] = []
    for qtype, question, answers, docs in ANSWERABLE:
        rows.append({"type": qtype, "question": question, "answers": answers, "doc_ids": docs})
        for a in answers:
            if not any(a in texts[d] for d in docs):
                problems.append(f"{question!r}: answer {a!r} occurs in none of {docs}")
        for d in docs:
            if not any(a in texts[d] for a in answers):
                problems.append(f"{question!r}: supporting doc {d} holds none of the answers")
    for qtype, question, probes in UNANSWERABLE:
        rows.append({"type": qtype, "question": question, "answers": [], "doc_ids": []})
        for probe in probes:
            hits = [name for name, t in texts.items() if probe.lower() in t.lower()]
            if hits:
                problems.append(f"{question!r}: probe {probe!r} occurs in {hits}")
    questions = [r["question"] for r in rows]
    problems += [f"duplicate question {q!r}" for q in {q for q in questions if questions.count(q) > 1}]
    if problems:
        raise SystemExit("gold set not written:\n  " + "\n  ".join(problems))
    for n, r in enumerate(rows, start=1):
        r["id"] = f"s{n:03d}"
    splits = assign_splits(rows)
    return [
        GoldItem(r["id"], r["question"], tuple(r["answers"]), tuple(r["doc_ids"]), splits[r["id"]], r["type"])
        for r in rows
    ]


def main() -> None:
    items = build()
    write_gold(items, OUT)
    by_split = {s: [it for it in items if it.split == s] for s in ("dev", "test")}
    print(f"wrote {OUT.relative_to(ROOT)}: {len(items)} questions")
    for s, its in by_split.items():
        print(f"  {s}: {len(its)} ({sum(not it.answerable for it in its)} unanswerable)")


if __name__ == "__main__":
    main()
