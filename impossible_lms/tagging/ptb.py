"""From Penn Treebank tags (what NLTK's perceptron gives) to UD words: UPOS, feats, lemma.

Pure functions, no model: tested on hand-written tag sequences.

Finite verbs get the UD English EWT feats the hop languages read:

- ``VBZ`` → ``Mood=Ind|Number=Sing|Person=3|Tense=Pres|VerbForm=Fin``.
- ``VBP`` (a present verb that is *not* 3rd singular) takes Number/Person from its
  subject, found by :func:`find_subject`: the nearest pronoun, noun or
  existential "there" to the verb's left in the same clause (relative pronouns
  are transparent, so in "the dogs that run" the subject of "run" is "dogs";
  object pronouns are skipped; ``, ; :`` and the sentence start end the clause;
  personal pronouns count by their text, since lower-case "i" is often mistagged;
  "X and Y" is plural, 1st person when I/we is in it), else, for questions (a
  "?" follows: "Do the dogs run?"), the first such word to its right before the
  next verb; "am"/"'m" is always Sing/1. I → Sing/1, you → Sing/2 (EWT's convention), we →
  Plur/1; anything 3rd person → Plur/3, since a VBP with a 3rd-person subject
  can only be plural ("the dog and the cat run"). No subject → Tense/Mood/VerbForm
  only, so the verb does not count as agreeing. Known miss: a VBP after an
  object relative ("the dogs that I see run": "run" gets I's Sing/1).
- ``VBD`` gets ``Tense=Past`` plus the subject's Number/Person when found.
- ``MD`` → AUX ``VerbForm=Fin``; ``VB`` → ``VerbForm=Inf``; ``VBG`` →
  ``VerbForm=Ger``; ``VBN`` → ``Tense=Past|VerbForm=Part``.
- be is always AUX (EWT tags the copula AUX); have/do are AUX when another verb
  follows in the clause, else VERB.

Lemmas: WordNet is not available offline, so verbs go through a small rule-based
lemmatiser with an irregular table (``verb_lemma``); other words lemmatise to
their lower-cased form (pronouns through a table, plural nouns through suffix rules).
"""

from __future__ import annotations

import re
from typing import Sequence

from perturbations.base import Word

# -- tokenisation ----------------------------------------------------------------------

# Treebank-style words that keep every character of the text: clitics split off as
# UD does ("doesn't" → does n't, "can't" → ca n't, "I'm" → I 'm), punctuation alone.
_APOS = "'\u2019"
TOKEN = re.compile(
    rf"""
      \w+(?=n[{_APOS}]t\b)                     # "does" of "doesn't", "ca" of "can't"
    | n[{_APOS}]t\b                            # the negation clitic
    | (?:(?<=\w)|(?<=\w\s))[{_APOS}](?:s|re|ve|m|ll|d)\b   # 's 're 've 'm 'll 'd after a word ("queen 's")
    | \w+(?:[-.](?=\w)\w+|[{_APOS}](?!(?:s|re|ve|m|ll|d|t)\b)\w+)*   # words, o'clock, well-known, 3.5
    | \.\.\.|--|[^\w\s]                        # punctuation, one mark at a time
    """,
    re.VERBOSE | re.IGNORECASE,
)


def tokenize(text: str) -> list[str]:
    return TOKEN.findall(text)


# -- UPOS -------------------------------------------------------------------------------

UPOS = {
    "CC": "CCONJ", "CD": "NUM", "DT": "DET", "EX": "PRON", "FW": "X", "IN": "ADP",
    "JJ": "ADJ", "JJR": "ADJ", "JJS": "ADJ", "LS": "X", "MD": "AUX", "NN": "NOUN",
    "NNS": "NOUN", "NNP": "PROPN", "NNPS": "PROPN", "PDT": "DET", "POS": "PART",
    "PRP": "PRON", "PRP$": "PRON", "RB": "ADV", "RBR": "ADV", "RBS": "ADV", "RP": "ADP",
    "SYM": "SYM", "TO": "PART", "UH": "INTJ", "VB": "VERB", "VBD": "VERB", "VBG": "VERB",
    "VBN": "VERB", "VBP": "VERB", "VBZ": "VERB", "WDT": "PRON", "WP": "PRON", "WP$": "PRON",
    "WRB": "ADV", "$": "SYM", "#": "SYM",
}
SUBORDINATORS = frozenset("that if because while although though since whether unless until before after as once".split())
NEGATION = frozenset({"n't", "not", "n\u2019t"})
AUX_LEMMAS = frozenset({"be", "have", "do"})

NOMINATIVE = {"i": ("Sing", "1"), "you": ("Sing", "2"), "we": ("Plur", "1"), "he": ("Sing", "3"),
              "she": ("Sing", "3"), "it": ("Sing", "3"), "they": ("Plur", "3"), "there": ("Plur", "3")}
OBJECT_PRONOUNS = frozenset({"me", "him", "her", "us", "them"})
PRONOUN_FEATS = {
    "i": ("I", "Case=Nom|Number=Sing|Person=1|PronType=Prs"),
    "me": ("I", "Case=Acc|Number=Sing|Person=1|PronType=Prs"),
    "you": ("you", "Person=2|PronType=Prs"),
    "he": ("he", "Case=Nom|Gender=Masc|Number=Sing|Person=3|PronType=Prs"),
    "him": ("he", "Case=Acc|Gender=Masc|Number=Sing|Person=3|PronType=Prs"),
    "she": ("she", "Case=Nom|Gender=Fem|Number=Sing|Person=3|PronType=Prs"),
    "her": ("she", "Gender=Fem|Number=Sing|Person=3|PronType=Prs"),
    "it": ("it", "Gender=Neut|Number=Sing|Person=3|PronType=Prs"),
    "we": ("we", "Case=Nom|Number=Plur|Person=1|PronType=Prs"),
    "us": ("we", "Case=Acc|Number=Plur|Person=1|PronType=Prs"),
    "they": ("they", "Case=Nom|Number=Plur|Person=3|PronType=Prs"),
    "them": ("they", "Case=Acc|Number=Plur|Person=3|PronType=Prs"),
}
DET_FEATS = {
    "the": "Definite=Def|PronType=Art", "a": "Definite=Ind|PronType=Art", "an": "Definite=Ind|PronType=Art",
    "this": "Number=Sing|PronType=Dem", "that": "Number=Sing|PronType=Dem",
    "these": "Number=Plur|PronType=Dem", "those": "Number=Plur|PronType=Dem",
}
SIMPLE_FEATS = {
    "NN": "Number=Sing", "NNS": "Number=Plur", "NNP": "Number=Sing", "NNPS": "Number=Plur",
    "JJ": "Degree=Pos", "JJR": "Degree=Cmp", "JJS": "Degree=Sup",
    "MD": "VerbForm=Fin", "VB": "VerbForm=Inf", "VBG": "VerbForm=Ger", "VBN": "Tense=Past|VerbForm=Part",
}
CLAUSE_BREAKS = frozenset({",", ";", ":", "--"})
SUBJECT_TAGS = frozenset({"PRP", "NN", "NNS", "NNP", "NNPS", "EX"})
INVERTED_TAGS = {"do": "VBP", "have": "VBP", "does": "VBZ", "has": "VBZ", "did": "VBD", "had": "VBD"}
QUESTION_SUBJECT_TAGS = frozenset({"PRP", "DT", "PRP$", "NNP", "NNPS", "NNS", "NN", "EX"})
VERB_TAGS = frozenset({"VB", "VBD", "VBG", "VBN", "VBP", "VBZ", "MD"})

# -- lemmas -------------------------------------------------------------------------------

IRREGULAR = {
    "is": "be", "am": "be", "are": "be", "was": "be", "were": "be", "been": "be", "being": "be",
    "'m": "be", "'re": "be", "ai": "be", "'s": "be", "\u2019m": "be", "\u2019re": "be", "\u2019s": "be",
    "has": "have", "had": "have", "'ve": "have", "\u2019ve": "have", "does": "do", "did": "do", "done": "do",
    "goes": "go", "went": "go", "gone": "go", "ca": "can", "wo": "will", "'ll": "will", "\u2019ll": "will",
    "'d": "would", "\u2019d": "would", "sha": "shall",
}
IRREGULAR_PAST = """arose arise|ate eat|eaten eat|awoke awake|began begin|begun begin|bent bend|bit bite|bitten bite|
blew blow|blown blow|broke break|broken break|brought bring|built build|bought buy|caught catch|chose choose|
chosen choose|came come|cut cut|dealt deal|dug dig|drew draw|drawn draw|dreamt dream|drank drink|drunk drink|
drove drive|driven drive|fell fall|fallen fall|fed feed|felt feel|fought fight|found find|fled flee|flew fly|
flown fly|forgot forget|forgotten forget|forgave forgive|froze freeze|frozen freeze|got get|gotten get|gave give|
given give|grew grow|grown grow|hung hang|heard hear|hid hide|hidden hide|held hold|hurt hurt|kept keep|knelt kneel|
knew know|known know|laid lay|led lead|left leave|lent lend|let let|lay lie|lain lie|lit light|lost lose|made make|
meant mean|met meet|paid pay|put put|quit quit|read read|rode ride|ridden ride|rang ring|rung ring|rose rise|
risen rise|ran run|said say|saw see|seen see|sought seek|sold sell|sent send|set set|shook shake|shaken shake|
shone shine|shot shoot|showed show|shown show|shut shut|sang sing|sung sing|sank sink|sat sit|slept sleep|slid slide|
spoke speak|spoken speak|spent spend|spun spin|stood stand|stole steal|stolen steal|stuck stick|stung sting|
struck strike|swore swear|swept sweep|swam swim|swum swim|swung swing|took take|taken take|taught teach|tore tear|
torn tear|told tell|thought think|threw throw|thrown throw|understood understand|woke wake|woken wake|wore wear|
worn wear|won win|wound wind|wrote write|written write|could can|would will|should shall|might may"""
IRREGULAR.update(dict(p.split() for p in IRREGULAR_PAST.replace("\n", "").split("|")))

_VOWELS = "aeiou"
_PUNCT_ONLY = re.compile(r"[^\w]+")


def verb_lemma(word: str, tag: str) -> str:
    """Rule-based English verb lemma (irregular table first, then suffix rules)."""
    w = word.lower()
    if w in IRREGULAR:
        return IRREGULAR[w]
    if tag == "VBZ":
        if w.endswith("ies") and len(w) > 4:
            return w[:-3] + "y"  # carries → carry (but dies/lies/ties stay below)
        if w.endswith(("sses", "shes", "ches", "xes", "zzes", "oes")):
            return w[:-2]  # watches → watch, goes → go
        return w[:-1] if w.endswith("s") and len(w) > 2 else w
    if tag in ("VBD", "VBN") and w.endswith("ed") and len(w) > 3:
        if w.endswith("ied") and len(w) > 4:
            return w[:-3] + "y"  # carried → carry
        stem = w[:-2]
        if len(stem) > 2 and stem[-1] == stem[-2] and stem[-1] not in "lsz" + _VOWELS:
            return stem[:-1]  # stopped → stop (but called, missed stay)
        if stem.endswith(("v", "c", "g", "z", "u")) or (stem.endswith("s") and stem[-2:-1] in tuple(_VOWELS)):
            return stem + "e"  # loved, danced, changed, used
        if w.endswith("eed") or stem.endswith("e"):
            return stem  # needed, agreed
        return stem
    if tag == "VBG" and w.endswith("ing") and len(w) > 4:
        stem = w[:-3]
        if len(stem) > 2 and stem[-1] == stem[-2] and stem[-1] not in "lsz" + _VOWELS:
            return stem[:-1]  # running → run
        return stem
    return w


def noun_lemma(word: str, tag: str) -> str:
    w = word if tag.startswith("NNP") else word.lower()
    if tag in ("NNS", "NNPS") and len(w) > 3:
        if w.endswith("ies"):
            return w[:-3] + "y"
        if w.endswith(("sses", "shes", "ches", "xes")):
            return w[:-2]
        if w.endswith("s") and not w.endswith("ss"):
            return w[:-1]
    return w


# -- subject finding and conversion ----------------------------------------------------------


def find_subject(tokens: Sequence[str], tags: Sequence[str], verb: int) -> tuple[str, str] | None:
    """(Number, Person) of the subject of the verb at ``verb`` (see the module docstring)."""
    for i in range(verb - 1, -1, -1):
        if tokens[i] in CLAUSE_BREAKS:
            break
        found = _subject_features(tokens[i], tags[i])
        if found:
            return _coordinated(tokens, tags, i, found)
    if "?" not in tokens[verb + 1 :]:
        return None  # no subject on the left and not a question: imperative or fragment
    for i in range(verb + 1, len(tokens)):
        if tags[i] in VERB_TAGS or tokens[i] in CLAUSE_BREAKS:
            break
        found = _subject_features(tokens[i], tags[i])
        if found:
            return found
    return None


def _coordinated(tokens: Sequence[str], tags: Sequence[str], i: int, found: tuple[str, str]) -> tuple[str, str]:
    """"Laura and I are": a subject right after "X and" is plural, 1st person if I/we is in it."""
    if i >= 2 and tokens[i - 1].lower() == "and":
        other = _subject_features(tokens[i - 2], tags[i - 2])
        if other is not None:
            return ("Plur", min(found[1], other[1]))
    return found


def _subject_features(token: str, tag: str) -> tuple[str, str] | None:
    lower = token.lower()
    if lower in NOMINATIVE and lower != "there":
        return NOMINATIVE[lower]  # by the word: lower-case "i" is often mistagged
    if tag not in SUBJECT_TAGS or not token[:1].isalnum():
        return None  # the perceptron sometimes tags quotes as nouns
    if tag == "PRP":
        return None  # object pronouns (me, him, them) are not subjects
    if tag == "EX":
        return ("Plur", "3")
    return ("Plur", "3") if tag in ("NNS", "NNPS") else ("Sing", "3")


def _finite(tense: str, subject: tuple[str, str] | None) -> str:
    if subject is None:
        return f"Mood=Ind|Tense={tense}|VerbForm=Fin"
    number, person = subject
    return f"Mood=Ind|Number={number}|Person={person}|Tense={tense}|VerbForm=Fin"


def _verb_feats(tokens: Sequence[str], tags: Sequence[str], i: int) -> str:
    tag = tags[i]
    if tag == "VBZ":
        return "Mood=Ind|Number=Sing|Person=3|Tense=Pres|VerbForm=Fin"
    if tag == "VBP":
        if tokens[i].lower() in ("am", "'m", "\u2019m"):
            return _finite("Pres", ("Sing", "1"))
        subject = find_subject(tokens, tags, i)
        if subject is not None and subject[1] == "3":
            subject = ("Plur", "3")  # a VBP can't be 3rd singular
        return _finite("Pres", subject)
    if tag == "VBD":
        return _finite("Past", find_subject(tokens, tags, i))
    return SIMPLE_FEATS.get(tag, "_")


def _verb_upos(tokens: Sequence[str], tags: Sequence[str], i: int, lemma: str, inverted: int | None) -> str:
    if tags[i] == "MD" or lemma == "be" or (lemma in AUX_LEMMAS and inverted == i):
        return "AUX"
    if lemma in AUX_LEMMAS:
        for j in range(i + 1, min(len(tokens), i + 4)):
            if tokens[j] in CLAUSE_BREAKS:
                break
            if tags[j] in ("VB", "VBN", "VBG"):
                return "AUX"
    return "VERB"


def fix_questions(tokens: Sequence[str], tags: Sequence[str]) -> list[str]:
    """The perceptron tags question-initial "Do"/"Have" as VB; a subject right after makes it VBP."""
    tags = list(tags)
    first = _inverted_aux(tokens, tags)
    if first is not None and (tags[first] == "VB" or tags[first] not in VERB_TAGS):
        tags[first] = INVERTED_TAGS.get(tokens[first].lower(), tags[first])
    return tags


def _inverted_aux(tokens: Sequence[str], tags: Sequence[str]) -> int | None:
    """Index of a question-initial do/have followed by its subject ("Does the dog ..."), else None."""
    first = next((i for i, t in enumerate(tokens) if not _PUNCT_ONLY.fullmatch(t)), None)
    if (
        first is not None
        and tokens[first].lower() in INVERTED_TAGS
        and verb_lemma(tokens[first], "VBZ") in ("do", "have")
        and first + 1 < len(tags)
        and (tags[first + 1] in QUESTION_SUBJECT_TAGS or tokens[first + 1].lower() in NEGATION)
    ):
        return first
    return None


# Words whose UD form depends on the token and its tag alone (all but verbs), made once:
# a Word is immutable, and building one per token was a third of the tagger's time.
_CONTEXT_FREE: dict[tuple[str, str], Word] = {}
_CONTEXT_FREE_MAX = 1_000_000


def to_words(tokens: Sequence[str], tags: Sequence[str]) -> tuple[Word, ...]:
    """UD words for a PTB-tagged token sequence."""
    tags = fix_questions(tokens, tags)
    inverted = _inverted_aux(tokens, tags)
    words = []
    for i, (token, tag) in enumerate(zip(tokens, tags)):
        if tag not in VERB_TAGS:
            word = _CONTEXT_FREE.get((token, tag))
            if word is None:
                if len(_CONTEXT_FREE) >= _CONTEXT_FREE_MAX:
                    _CONTEXT_FREE.clear()
                word = _CONTEXT_FREE[token, tag] = _context_free_word(token, tag)
            words.append(word)
            continue
        lower = token.lower()
        if lower in NEGATION:
            words.append(Word(token, "PART", "Polarity=Neg", "not"))
        else:
            lemma = verb_lemma(token, tag) if tag != "MD" else IRREGULAR.get(lower, lower)
            if lower in ("'s", "\u2019s") and i + 1 < len(tags) and tags[i + 1] in ("VBN",) and tokens[i + 1].lower() != "been":
                lemma = "have"  # "he's gone" (has) vs "he's going" (is)
            words.append(Word(token, _verb_upos(tokens, tags, i, lemma, inverted), _verb_feats(tokens, tags, i), lemma))
    return tuple(words)


def _context_free_word(token: str, tag: str) -> Word:
    """The UD word of a non-verb token with its PTB tag."""
    lower = token.lower()
    if lower in NEGATION:
        return Word(token, "PART", "Polarity=Neg", "not")
    if tag in ("PRP", "PRP$"):
        lemma, feats = PRONOUN_FEATS.get(lower, (lower, "PronType=Prs"))
        if tag == "PRP$":
            feats = "Poss=Yes|PronType=Prs"
        return Word(token, "PRON", feats, lemma)
    if tag in ("NN", "NNS", "NNP", "NNPS"):
        return Word(token, UPOS[tag], SIMPLE_FEATS[tag], noun_lemma(token, tag))
    if tag == "DT":
        return Word(token, "DET", DET_FEATS.get(lower, "_"), "a" if lower == "an" else lower)
    if tag == "IN":
        return Word(token, "SCONJ" if lower in SUBORDINATORS else "ADP", "_", lower)
    upos = UPOS.get(tag) or ("PUNCT" if _PUNCT_ONLY.fullmatch(token) else "X")
    return Word(token, upos, SIMPLE_FEATS.get(tag, "_"), lower)
