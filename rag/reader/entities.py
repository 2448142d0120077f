"""A light guess at what a name is (a country, an organisation, a person) and at what a question asks for.

No model: a list of country names and aliases, and the words organisations' names are built with. It only
needs to be right often enough to prefer 'Marco Rubio' over 'New Zealand' when the question asks for an
official, and 'Canberra' over 'Australia' when it asks for a capital.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Literal

EntityKind = Literal["country", "org", "person", "unknown"]
AskedEntity = Literal["country", "org", "person", "city"]

COUNTRIES = frozenset(
    """afghanistan albania algeria andorra angola argentina armenia australia austria azerbaijan bahamas bahrain
    bangladesh barbados belarus belgium belize benin bhutan bolivia bosnia botswana brazil brunei bulgaria
    burkina burundi cambodia cameroon canada chad chile china colombia comoros congo croatia cuba cyprus
    czechia denmark djibouti dominica ecuador egypt eritrea estonia eswatini ethiopia fiji finland france gabon
    gambia georgia germany ghana greece greenland grenada guatemala guinea guyana haiti honduras hungary iceland
    india indonesia iran iraq ireland israel italy jamaica japan jordan kazakhstan kenya kiribati kosovo kuwait
    kyrgyzstan laos latvia lebanon lesotho liberia libya liechtenstein lithuania luxembourg madagascar malawi
    malaysia maldives mali malta mauritania mauritius mexico micronesia moldova monaco mongolia montenegro
    morocco mozambique myanmar burma namibia nauru nepal netherlands holland nicaragua niger nigeria norway oman
    pakistan palau palestine panama paraguay peru philippines poland portugal qatar romania russia rwanda samoa
    senegal serbia seychelles singapore slovakia slovenia somalia spain sudan suriname sweden switzerland syria
    taiwan tajikistan tanzania thailand togo tonga tunisia turkey türkiye turkmenistan tuvalu uganda ukraine
    uruguay uzbekistan vanuatu vatican venezuela vietnam yemen zambia zimbabwe britain england scotland wales
    america us u.s. usa u.s.a. uk u.k. prc""".split()
) | frozenset(
    line.strip()
    for line in """costa rica
    dominican republic
    east timor
    el salvador
    equatorial guinea
    ivory coast
    marshall islands
    new zealand
    north korea
    north macedonia
    papua new guinea
    saudi arabia
    sierra leone
    solomon islands
    south africa
    south korea
    south sudan
    sri lanka
    united arab emirates
    united kingdom
    united states
    united states of america
    czech republic
    central african republic""".splitlines()
)

# the words organisations' names are made of ('Ministry of Commerce', 'Center for China and Globalization')
ORG_WORDS = frozenset(
    """ministry ministries department agency center centre institute institution university college council
    commission committee bank fund foundation association federation union alliance group company corp
    corporation inc ltd plc llc co holdings exchange exchanges office bureau administration authority
    government parliament congress senate court party club forum organisation organization society times
    news post journal herald tribune gazette daily press reuters bloomberg guardian xinhua eu nato asean opec
    g7 g20 un imf wto""".split()
)

_ASKS = {
    "country": frozenset("country countries nation nations".split()),
    "city": frozenset("city cities capital capitals town towns".split()),
    "org": frozenset(
        """body bodies agency agencies organisation organization organisations organizations company companies
        firm firms outlet outlets newspaper newspapers publication paper ministry ministries institute
        department bank group groups""".split()
    ),
}
_ASKS_PERSON = re.compile(
    r"\b(?:spokes\w*|secretary|expert|researcher|fellow|official|minister|leader|president|director|analyst|"
    r"author|chief|head|executive|person|man|woman|whose\s+name|economist|founder|ceo)\b",
    re.I,
)
_WH_PHRASE = re.compile(
    r"\b(?:which|what)((?:\s+[\w’'\-]+){1,5}?)\s+(?:is|are|was|were|has|have|had|do|does|did|will|would|can|could|may|might|said|told|\w+ed|\w+s)\b",
    re.I,
)
_NAME_WORD = re.compile(r"[A-Z][a-z’'\-]+|[A-Z]\.")


def asked_entity(question: str, unit: str | None) -> AskedEntity | None:
    """What kind of name the question asks for, if it says: 'which country' → country, 'which US official'
    → person, 'which outlet' → org, 'which capital' → city."""
    # the head noun is the last of the words after which/what that names a kind ('government body' → body)
    m = _WH_PHRASE.search(question)
    phrase = m.group(1).lower().split() if m else []
    for word in reversed([*phrase, unit or ""]):
        for kind, heads in _ASKS.items():
            if word in heads:
                return kind  # type: ignore[return-value]
    if _ASKS_PERSON.search(question):
        return "person"
    return None


@lru_cache(maxsize=50_000)
def entity_kind(name: str) -> EntityKind:
    """Guess what a capitalised name is. 'the US', 'China’s' → country; 'Ministry of Commerce' → org;
    'Marco Rubio' (two to four plain capitalised words) → person; a single unknown word → unknown."""
    key = re.sub(r"(?:’s|'s)$", "", name.strip()).lower()
    key = key.removeprefix("the ")
    if key in COUNTRIES:
        return "country"
    words = key.replace("-", " ").split()
    if any(w in ORG_WORDS for w in words):
        return "org"
    parts = name.split()
    if 2 <= len(parts) <= 4 and all(_NAME_WORD.fullmatch(p) for p in parts):
        return "person"
    return "unknown"


# how much an entity kind fits the kind asked for: (asked, found) → factor; 1.0 where not listed
FIT: dict[tuple[AskedEntity, EntityKind], float] = {
    ("person", "person"): 1.15,
    ("person", "country"): 0.7,
    ("person", "org"): 0.7,
    ("person", "unknown"): 0.9,
    ("country", "country"): 1.15,
    ("country", "person"): 0.7,
    ("country", "org"): 0.8,
    ("city", "country"): 0.7,
    ("city", "person"): 0.7,
    ("city", "org"): 0.8,
    ("org", "org"): 1.15,
    ("org", "person"): 0.85,
    ("org", "country"): 0.85,
}


def entity_fit(asked: AskedEntity | None, name: str) -> float:
    """A confidence factor for a name given what the question asks for (1.0 when it asks nothing specific)."""
    if asked is None:
        return 1.0
    return FIT.get((asked, entity_kind(name)), 1.0)
