"""The embedded synthetic English corpus: a seeded grammar with gold UD tags.

It exists so that the whole pipeline (perturb → train → evaluate) runs with no
download and no tagger model, and so tests have sentences whose tags are known
exactly. The grammar covers what the impossible languages care about:

- subject–verb agreement in the present (3rd person singular and plural, and
  I/you/we), with attractor nouns in prepositional phrases and relative clauses;
- past tense, progressives, perfects, futures, negation with do-support;
- the clitics n't 's 're 've 'm 'll, glued to the word before in the text and
  separate words in ``Sentence.words``, as UD does ("doesn't" → does + n't);
- commas, sentence-initial quotes and interjections, questions (yes/no and wh);
- three genres with different mixes: ``childes``, ``stories``, ``dialogue``.

Tags follow UD English EWT conventions (feats of finite verbs carry
Mood/Number/Person/Tense/VerbForm; "n't" is PART with lemma "not"). The text of
every sentence is its words joined by single spaces with the clitics glued on
(the same rule :func:`perturbations.hop.join_words` uses), so ``text`` and
``words`` always agree.

Each (genre, split) file draws from its own ``random.Random`` seeded by
``(seed, genre, split)``, so files are independent and generation is
deterministic across runs and platforms. Lexicon words are built once as shared
immutable :class:`Word` objects, which keeps 100k sentences to a few seconds.
"""

from __future__ import annotations

import random
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from typing import Callable

from perturbations.base import Sentence, Word

# Bump when the grammar changes: it is part of the corpus fingerprint (and so of caches).
GRAMMAR_VERSION = 1
GENRES = ("childes", "stories", "dialogue")
SPLITS = ("train", "dev", "test")
SPLIT_SHARE = {"train": 0.9, "dev": 0.05, "test": 0.05}
CLITICS = frozenset({"n't", "'s", "'re", "'ve", "'m", "'ll"})
MIN_WORDS, MAX_WORDS = 3, 30

# -- lexicon ------------------------------------------------------------------------

# singular plural (animate nouns can be subjects of every verb)
ANIMATE = """dog dogs|cat cats|bird birds|horse horses|rabbit rabbits|bear bears|duck ducks|
frog frogs|pig pigs|cow cows|sheep sheep|mouse mice|fox foxes|wolf wolves|goose geese|
monkey monkeys|child children|baby babies|man men|woman women|boy boys|girl girls|
teacher teachers|doctor doctors|farmer farmers|king kings|queen queens|princess princesses|
friend friends|brother brothers|sister sisters|neighbour neighbours|driver drivers|
baker bakers|soldier soldiers|giant giants|witch witches|fairy fairies|person people|
student students|pilot pilots|sailor sailors|puppy puppies|kitten kittens"""
THINGS = """ball balls|book books|box boxes|cup cups|apple apples|cookie cookies|car cars|
hat hats|shoe shoes|house houses|tree trees|flower flowers|toy toys|boat boats|
chair chairs|table tables|door doors|window windows|letter letters|key keys|
story stories|song songs|picture pictures|cake cakes|bag bags|coat coats|stone stones|
egg eggs|bottle bottles|spoon spoons|train trains|garden gardens|road roads|river rivers|
castle castles|forest forests|bridge bridges|ship ships|lamp lamps|candle candles|
basket baskets|blanket blankets|bed beds|clock clocks|ring rings|sandwich sandwiches|
knife knives|leaf leaves|wheel wheels|drum drums|pencil pencils|map maps"""
NAMES = """Mary John Anna Tom Lucy Sam Emma Jack Lily Max Sophie Ben Rosa Leo Clara
Peter Alice Harry Nina Oscar Grandma Grandpa Mommy Daddy"""
ADJECTIVES = """big small little red blue green yellow old new happy sad tall short
funny pretty kind brave quiet loud hungry sleepy clever tiny huge dark bright soft
warm cold wet dry shiny heavy strange lovely angry busy gentle wild silly lazy"""
ADVERBS = """quickly slowly quietly loudly today now again often always never
sometimes together outside carefully happily suddenly soon"""
PREPOSITIONS = "in on under near with behind beside into from across"

# lemma 3sg past participle gerund ; T: transitive, I: intransitive
VERBS_T = """chase chases chased chased chasing|see sees saw seen seeing|like likes liked liked liking|
want wants wanted wanted wanting|find finds found found finding|take takes took taken taking|
make makes made made making|eat eats ate eaten eating|hold holds held held holding|
carry carries carried carried carrying|push pushes pushed pushed pushing|pull pulls pulled pulled pulling|
watch watches watched watched watching|help helps helped helped helping|love loves loved loved loving|
need needs needed needed needing|open opens opened opened opening|build builds built built building|
draw draws drew drawn drawing|catch catches caught caught catching|throw throws threw thrown throwing|
bring brings brought brought bringing|read reads read read reading|write writes wrote written writing|
hug hugs hugged hugged hugging|kick kicks kicked kicked kicking|wash washes washed washed washing|
fix fixes fixed fixed fixing|follow follows followed followed following|visit visits visited visited visiting|
know knows knew known knowing|hear hears heard heard hearing|touch touches touched touched touching|
bite bites bit bitten biting|keep keeps kept kept keeping|lose loses lost lost losing|
buy buys bought bought buying|hide hides hid hidden hiding|drop drops dropped dropped dropping|
paint paints painted painted painting|miss misses missed missed missing|call calls called called calling"""
VERBS_I = """sleep sleeps slept slept sleeping|run runs ran run running|jump jumps jumped jumped jumping|
play plays played played playing|laugh laughs laughed laughed laughing|cry cries cried cried crying|
sing sings sang sung singing|dance dances danced danced dancing|swim swims swam swum swimming|
smile smiles smiled smiled smiling|wait waits waited waited waiting|fall falls fell fallen falling|
sit sits sat sat sitting|walk walks walked walked walking|go goes went gone going|
come comes came come coming|fly flies flew flown flying|hide hides hid hidden hiding|
shout shouts shouted shouted shouting|work works worked worked working|rest rests rested rested resting|
win wins won won winning|listen listens listened listened listening|stay stays stayed stayed staying"""
SAY = "say says said said saying"
THINK = "think thinks thought thought thinking"

PRON_SUBJ = {  # text: (feats, verb number, verb person)
    "I": ("Case=Nom|Number=Sing|Person=1|PronType=Prs", "Sing", "1"),
    "you": ("Case=Nom|Person=2|PronType=Prs", "Sing", "2"),
    "he": ("Case=Nom|Gender=Masc|Number=Sing|Person=3|PronType=Prs", "Sing", "3"),
    "she": ("Case=Nom|Gender=Fem|Number=Sing|Person=3|PronType=Prs", "Sing", "3"),
    "it": ("Case=Nom|Gender=Neut|Number=Sing|Person=3|PronType=Prs", "Sing", "3"),
    "we": ("Case=Nom|Number=Plur|Person=1|PronType=Prs", "Plur", "1"),
    "they": ("Case=Nom|Number=Plur|Person=3|PronType=Prs", "Plur", "3"),
}
PRON_OBJ = {
    "me": ("I", "Case=Acc|Number=Sing|Person=1|PronType=Prs"),
    "you": ("you", "Case=Acc|Person=2|PronType=Prs"),
    "him": ("he", "Case=Acc|Gender=Masc|Number=Sing|Person=3|PronType=Prs"),
    "her": ("she", "Case=Acc|Gender=Fem|Number=Sing|Person=3|PronType=Prs"),
    "it": ("it", "Case=Acc|Gender=Neut|Number=Sing|Person=3|PronType=Prs"),
    "us": ("we", "Case=Acc|Number=Plur|Person=1|PronType=Prs"),
    "them": ("they", "Case=Acc|Number=Plur|Person=3|PronType=Prs"),
}
DETS_SING = {
    "the": "Definite=Def|PronType=Art",
    "a": "Definite=Ind|PronType=Art",
    "this": "Number=Sing|PronType=Dem",
    "that": "Number=Sing|PronType=Dem",
    "every": "PronType=Tot",
}
DETS_PLUR = {
    "the": "Definite=Def|PronType=Art",
    "these": "Number=Plur|PronType=Dem",
    "those": "Number=Plur|PronType=Dem",
    "some": "PronType=Ind",
}
INTERJECTIONS = ("oh", "well", "yes", "no", "look", "okay", "wow", "hey")
WH = {  # word, upos, feats
    "what": ("PRON", "PronType=Int"),
    "where": ("ADV", "PronType=Int"),
    "why": ("ADV", "PronType=Int"),
    "who": ("PRON", "PronType=Int"),
}


def _words(spec: str) -> list[str]:
    return spec.replace("\n", " ").split()


def _pairs(spec: str) -> list[tuple[str, str]]:
    return [tuple(p.split()) for p in spec.replace("\n", " ").split("|")]  # type: ignore[misc]


def _fin(number: str, person: str, tense: str) -> str:
    return f"Mood=Ind|Number={number}|Person={person}|Tense={tense}|VerbForm=Fin"


@dataclass(frozen=True)
class Verb:
    lemma: str
    forms: dict[str, Word]  # key: "Sing3", "Sing1", "Plur3", ..., "past:<num><person>", "inf", "part", "ger"

    def finite(self, number: str, person: str, tense: str) -> Word:
        return self.forms[f"{tense}:{number}{person}"]


def _verb(entry: str) -> Verb:
    lemma, s3, past, part, ger = entry.split()
    forms: dict[str, Word] = {}
    for number in ("Sing", "Plur"):
        for person in "123":
            pres = s3 if (number, person) == ("Sing", "3") else lemma
            forms[f"Pres:{number}{person}"] = Word(pres, "VERB", _fin(number, person, "Pres"), lemma)
            forms[f"Past:{number}{person}"] = Word(past, "VERB", _fin(number, person, "Past"), lemma)
    forms["inf"] = Word(lemma, "VERB", "VerbForm=Inf", lemma)
    forms["imp"] = Word(lemma.capitalize(), "VERB", "Mood=Imp|VerbForm=Fin", lemma)
    forms["part"] = Word(part, "VERB", "Tense=Past|VerbForm=Part", lemma)
    forms["ger"] = Word(ger, "VERB", "Tense=Pres|VerbForm=Part", lemma)
    return Verb(lemma, forms)


def _aux_forms() -> dict[str, Word]:
    """Finite be/have/do forms keyed "<lemma>:<tense>:<number><person>", plus modals and clitics."""
    out: dict[str, Word] = {}
    be_pres = {"Sing1": "am", "Sing2": "are", "Sing3": "is"}
    be_past = {"Sing1": "was", "Sing3": "was"}
    for number in ("Sing", "Plur"):
        for person in "123":
            key = f"{number}{person}"
            third_sing = key == "Sing3"
            for lemma, pres, past in (
                ("be", be_pres.get(key, "are"), be_past.get(key, "were")),
                ("have", "has" if third_sing else "have", "had"),
                ("do", "does" if third_sing else "do", "did"),
            ):
                out[f"{lemma}:Pres:{key}"] = Word(pres, "AUX", _fin(number, person, "Pres"), lemma)
                out[f"{lemma}:Past:{key}"] = Word(past, "AUX", _fin(number, person, "Past"), lemma)
            # contracted forms: 'm (I), 're (you/we/they), 's (3sg); 've for have
            contracted_be = {"Sing1": "'m", "Sing3": "'s"}.get(key, "'re")
            out[f"be':Pres:{key}"] = Word(contracted_be, "AUX", _fin(number, person, "Pres"), "be")
            out[f"have':Pres:{key}"] = Word("'s" if third_sing else "'ve", "AUX", _fin(number, person, "Pres"), "have")
    out["will"] = Word("will", "AUX", "VerbForm=Fin", "will")
    out["'ll"] = Word("'ll", "AUX", "VerbForm=Fin", "will")
    out["can"] = Word("can", "AUX", "VerbForm=Fin", "can")
    out["ca"] = Word("ca", "AUX", "VerbForm=Fin", "can")  # "can't" = ca + n't in UD
    out["wo"] = Word("wo", "AUX", "VerbForm=Fin", "will")  # "won't" = wo + n't
    out["n't"] = Word("n't", "PART", "Polarity=Neg", "not")
    out["not"] = Word("not", "PART", "Polarity=Neg", "not")
    return out


class Lexicon:
    """Every word of the grammar as a shared Word object."""

    def __init__(self) -> None:
        self.animate = [self._noun(s, p) for s, p in _pairs(ANIMATE)]
        self.things = [self._noun(s, p) for s, p in _pairs(THINGS)]
        self.names = [Word(n, "PROPN", "Number=Sing", n) for n in _words(NAMES)]
        self.adjectives = [Word(a, "ADJ", "Degree=Pos", a) for a in _words(ADJECTIVES)]
        self.adverbs = [Word(a, "ADV", "_", a) for a in _words(ADVERBS)]
        self.preps = [Word(p, "ADP", "_", p) for p in _words(PREPOSITIONS)]
        self.trans = [_verb(e) for e in VERBS_T.replace("\n", " ").split("|")]
        self.intrans = [_verb(e) for e in VERBS_I.replace("\n", " ").split("|")]
        self.say = _verb(SAY)
        self.think = _verb(THINK)
        self.subj = {t: Word(t, "PRON", f, "I" if t == "I" else t) for t, (f, _, _) in PRON_SUBJ.items()}
        self.obj = [Word(t, "PRON", f, lemma) for t, (lemma, f) in PRON_OBJ.items()]
        self.det_sing = {d: Word(d, "DET", f, "a" if d == "a" else d) for d, f in DETS_SING.items()}
        self.det_sing["an"] = Word("an", "DET", DETS_SING["a"], "a")
        self.det_plur = {d: Word(d, "DET", f, d) for d, f in DETS_PLUR.items()}
        self.aux = _aux_forms()
        self.rel = Word("that", "PRON", "PronType=Rel", "that")
        self.comp = Word("that", "SCONJ", "_", "that")
        self.and_ = Word("and", "CCONJ", "_", "and")
        self.but = Word("but", "CCONJ", "_", "but")
        self.intj = [Word(w.capitalize(), "INTJ", "_", w) for w in INTERJECTIONS]
        self.wh = {w: Word(w.capitalize(), upos, f, w) for w, (upos, f) in WH.items()}
        self.punct = {p: Word(p, "PUNCT", "_", p) for p in (".", "?", "!", ",", '"')}
        self.at = Word("at", "ADP", "_", "at")

    @staticmethod
    def _noun(sing: str, plur: str) -> tuple[Word, Word]:
        return Word(sing, "NOUN", "Number=Sing", sing), Word(plur, "NOUN", "Number=Plur", sing)

    def size(self) -> int:
        """Distinct word forms (the vocabulary a model can learn)."""
        forms = {w.text.lower() for pair in self.animate + self.things for w in pair}
        forms |= {w.text.lower() for w in self.names + self.adjectives + self.adverbs + self.preps + self.obj}
        forms |= {w.text.lower() for v in self.trans + self.intrans for w in v.forms.values()}
        forms |= {w.text.lower() for w in self.aux.values()}
        return len(forms)


@lru_cache(maxsize=1)
def lexicon() -> Lexicon:
    return Lexicon()


# -- grammar --------------------------------------------------------------------------


class _Builder:
    """One sentence being generated: a list of words plus the grammar's choices."""

    def __init__(self, rng: random.Random, lex: Lexicon, genre: str) -> None:
        self.rng = rng
        self.lex = lex
        self.genre = genre
        self.words: list[Word] = []
        # gold constituents (label, first word, end word), recorded as the grammar builds them;
        # recording draws no random numbers, so the sentences are the same with or without trees
        self.spans: list[tuple[str, int, int]] = []

    @contextmanager
    def span(self, label: str):
        start = len(self.words)
        yield
        self.spans.append((label, start, len(self.words)))

    def add(self, *words: Word) -> None:
        self.words.extend(words)

    def chance(self, p: float) -> bool:
        return self.rng.random() < p

    # noun phrases return the verb agreement they trigger: (number, person)
    def noun_phrase(self, animate: bool = True, depth: int = 0, pronoun_ok: bool = True) -> tuple[str, str]:
        with self.span("NP"):
            return self._noun_phrase(animate, depth, pronoun_ok)

    def _noun_phrase(self, animate: bool, depth: int, pronoun_ok: bool) -> tuple[str, str]:
        rng, lex = self.rng, self.lex
        roll = rng.random()
        pron_share = {"dialogue": 0.5, "childes": 0.35, "stories": 0.2}[self.genre]
        if pronoun_ok and roll < pron_share:
            text = rng.choice(tuple(PRON_SUBJ))
            self.add(lex.subj[text])
            _, number, person = PRON_SUBJ[text]
            return number, person
        if roll < pron_share + 0.12 and animate:
            self.add(rng.choice(lex.names))
            return "Sing", "3"
        plural = rng.random() < 0.45
        pair = rng.choice(lex.animate if animate else lex.things)
        self._det_adj_noun(pair[1] if plural else pair[0], plural)
        if depth == 0 and self.chance(0.18):
            with self.span("PP"):
                self.add(rng.choice(lex.preps))  # an attractor noun between subject and verb
                self.object_phrase(pronoun_ok=False)
        elif depth == 0 and animate and self.chance(0.15):
            self.relative_clause("Plur" if plural else "Sing")
        return ("Plur" if plural else "Sing"), "3"

    def _det_adj_noun(self, noun: Word, plural: bool) -> None:
        rng, lex = self.rng, self.lex
        dets = lex.det_plur if plural else lex.det_sing
        det_text = rng.choice(tuple(d for d in dets if d != "an"))
        adjective = rng.choice(lex.adjectives) if self.chance(0.3) else None
        following = (adjective or noun).text
        if det_text == "a" and following[0] in "aeiou":
            det_text = "an"
        self.add(dets[det_text])
        if adjective:
            self.add(adjective)
        self.add(noun)

    def object_phrase(self, pronoun_ok: bool = True) -> None:
        with self.span("NP"):
            self._object_phrase(pronoun_ok)

    def _object_phrase(self, pronoun_ok: bool) -> None:
        rng, lex = self.rng, self.lex
        roll = rng.random()
        if pronoun_ok and roll < 0.2:
            self.add(rng.choice(lex.obj))
        elif roll < 0.3:
            self.add(rng.choice(lex.names))
        else:
            plural = rng.random() < 0.45
            pair = rng.choice(lex.things if rng.random() < 0.6 else lex.animate)
            self._det_adj_noun(pair[1] if plural else pair[0], plural)

    def relative_clause(self, number: str) -> None:
        """"that chases the cat" / "that the cat chases": the verb agrees with its own subject."""
        self.add(self.lex.rel)
        verb = self.rng.choice(self.lex.trans)
        if self.chance(0.6):  # subject relative: agrees with the head noun
            self.add(verb.finite(number, "3", self._tense()))
            self.object_phrase()
        else:  # object relative: agrees with the inner subject
            inner_number, inner_person = self.noun_phrase(depth=1)
            self.add(verb.finite(inner_number, inner_person, self._tense()))

    def _tense(self) -> str:
        past_share = {"stories": 0.6, "childes": 0.2, "dialogue": 0.3}[self.genre]
        return "Past" if self.chance(past_share) else "Pres"

    def predicate(self, number: str, person: str) -> None:
        """Verb group + complements for a subject already added."""
        with self.span("VP"):
            self._predicate(number, person)

    def _predicate(self, number: str, person: str) -> None:
        rng, lex = self.rng, self.lex
        transitive = self.chance(0.6)
        verb = rng.choice(lex.trans if transitive else lex.intrans)
        key = f"{number}{person}"
        roll = rng.random()
        tense = self._tense()
        if roll < 0.5:
            self.add(verb.finite(number, person, tense))
        elif roll < 0.65:  # negation with do-support
            self.add(lex.aux[f"do:{tense}:{key}"])
            self.add(lex.aux["n't"] if self.chance(0.7) else lex.aux["not"])
            self.add(verb.forms["inf"])
        elif roll < 0.78:  # progressive, often contracted after a pronoun
            contracted = self.words[-1].upos == "PRON" and self.chance(0.6)
            self.add(lex.aux[f"{'be' + chr(39) if contracted else 'be'}:{tense if not contracted else 'Pres'}:{key}"])
            self.add(verb.forms["ger"])
        elif roll < 0.88:  # perfect
            contracted = self.words[-1].upos == "PRON" and key != "Sing3" and self.chance(0.6)
            self.add(lex.aux[f"{'have' + chr(39) if contracted else 'have'}:Pres:{key}"])
            self.add(verb.forms["part"])
        else:  # future / modal, with n't forms
            choice = rng.random()
            if choice < 0.3 and self.words[-1].upos == "PRON":
                self.add(lex.aux["'ll"])
            elif choice < 0.5:
                self.add(lex.aux["wo"], lex.aux["n't"])
            elif choice < 0.65:
                self.add(lex.aux["ca"], lex.aux["n't"])
            else:
                self.add(lex.aux[rng.choice(("will", "can"))])
            self.add(verb.forms["inf"])
        if transitive:
            self.object_phrase()
        if self.chance(0.25):
            with self.span("PP"):
                self.add(rng.choice(lex.preps))
                self.object_phrase()
        if self.chance(0.15):
            with self.span("ADVP"):
                self.add(rng.choice(lex.adverbs))

    def clause(self) -> None:
        number, person = self.noun_phrase()
        self.predicate(number, person)


# Sentence templates. Each adds a whole sentence to the builder, capitalisation included.


def _declarative(b: _Builder) -> None:
    if b.chance(0.12):
        b.add(b.rng.choice(b.lex.intj), b.lex.punct[","])
    b.clause()
    if b.chance(0.15):
        b.add(b.lex.punct[","], b.lex.and_ if b.chance(0.6) else b.lex.but)
        b.clause()
    b.add(b.lex.punct["!" if b.chance(0.08) else "."])


def _complement(b: _Builder) -> None:
    """"I think the dogs chase the cat ." / "Mary said that ..."."""
    number, person = b.noun_phrase(depth=1)
    verb = b.lex.think if b.chance(0.5) else b.lex.say
    b.add(verb.finite(number, person, b._tense()))
    if b.chance(0.4):
        b.add(b.lex.comp)
    b.clause()
    b.add(b.lex.punct["."])


def _quote(b: _Builder) -> None:
    """'" The dog sleeps , " says Mary .' — a sentence-initial quotation mark."""
    b.add(b.lex.punct['"'])
    b.clause()
    b.add(b.lex.punct[","], b.lex.punct['"'])
    number, person = b.noun_phrase(depth=1)
    b.add(b.lex.say.finite(number, person, b._tense()))
    b.add(b.lex.punct["."])


def _yes_no_question(b: _Builder) -> None:
    """"Does the dog chase the cats ?" / "Do they sleep ?"."""
    lex = b.lex
    at = len(b.words)
    b.add(lex.aux["do:Pres:Sing3"])  # placeholder, replaced once the subject's agreement is known
    number, person = b.noun_phrase(depth=1)
    tense = b._tense()
    b.words[at] = lex.aux[f"do:{tense}:{number}{person}"]
    transitive = b.chance(0.6)
    verb = b.rng.choice(lex.trans if transitive else lex.intrans)
    b.add(verb.forms["inf"])
    if transitive:
        b.object_phrase()
    b.add(lex.punct["?"])


def _wh_question(b: _Builder) -> None:
    """"What does the girl want ?" / "Where do they go ?"."""
    lex = b.lex
    wh = b.rng.choice(("what", "where", "why"))
    b.add(lex.wh[wh])
    at = len(b.words)
    b.add(lex.aux["do:Pres:Sing3"])
    number, person = b.noun_phrase(depth=1)
    b.words[at] = lex.aux[f"do:{b._tense()}:{number}{person}"]
    pool = lex.trans if wh == "what" else lex.intrans
    b.add(b.rng.choice(pool).forms["inf"])
    b.add(lex.punct["?"])


def _imperative(b: _Builder) -> None:
    """"Look at the dog !" / "Chase the ball ."."""
    lex = b.lex
    if b.chance(0.4):
        b.add(Word("Look", "VERB", "Mood=Imp|VerbForm=Fin", "look"), lex.at)
    else:
        b.add(b.rng.choice(lex.trans).forms["imp"])
    b.object_phrase()
    b.add(lex.punct["!" if b.chance(0.5) else "."])


TEMPLATES: dict[str, Callable[[_Builder], None]] = {
    "declarative": _declarative,
    "complement": _complement,
    "quote": _quote,
    "yes_no": _yes_no_question,
    "wh": _wh_question,
    "imperative": _imperative,
}
GENRE_MIX: dict[str, dict[str, float]] = {
    "childes": {"declarative": 0.45, "yes_no": 0.2, "wh": 0.15, "imperative": 0.15, "complement": 0.05},
    "stories": {"declarative": 0.6, "quote": 0.2, "complement": 0.15, "yes_no": 0.05},
    "dialogue": {"declarative": 0.45, "complement": 0.2, "yes_no": 0.2, "wh": 0.1, "imperative": 0.05},
}


def join(words: list[Word] | tuple[Word, ...]) -> str:
    """The text of a word list: single spaces, clitics glued to the word before."""
    parts: list[str] = []
    for w in words:
        if parts and w.text in CLITICS:
            parts[-1] += w.text
        else:
            parts.append(w.text)
    return " ".join(parts)


def _capitalise(words: list[Word]) -> None:
    """Upper-case the first alphabetic word ("the" → "The"); the lemma stays."""
    for i, w in enumerate(words):
        if w.upos == "PUNCT":
            continue
        if w.text[0].islower():
            words[i] = Word(w.text[0].upper() + w.text[1:], w.upos, w.feats, w.lemma)
        return


def generate_sentence(rng: random.Random, genre: str) -> Sentence:
    """One grammatical sentence of 3..30 words with gold tags."""
    return generate_tree(rng, genre)[0]


def generate_tree(rng: random.Random, genre: str) -> tuple[Sentence, list[tuple[str, int, int]]]:
    """:func:`generate_sentence` with its gold constituents ``(label, first word, end word)`` (NP, VP,
    PP, ADVP as the grammar built them; clauses and the verbs of "say"/"think" frames are not recorded)."""
    lex = lexicon()
    mix = GENRE_MIX[genre]
    names, weights = tuple(mix), tuple(mix.values())
    while True:
        b = _Builder(rng, lex, genre)
        TEMPLATES[rng.choices(names, weights)[0]](b)
        if MIN_WORDS <= len(b.words) <= MAX_WORDS:
            break
    _capitalise(b.words)
    words = tuple(b.words)
    return Sentence(join(words), words, genre), b.spans


def split_sizes(total: int) -> dict[tuple[str, str], int]:
    """How many sentences each (genre, split) file gets: genres equal, splits 90/5/5."""
    per_genre = total // len(GENRES)
    sizes = {}
    for g_index, genre in enumerate(GENRES):
        n = per_genre + (1 if g_index < total % len(GENRES) else 0)
        dev = round(n * SPLIT_SHARE["dev"])
        test = round(n * SPLIT_SHARE["test"])
        sizes[(genre, "train")] = n - dev - test
        sizes[(genre, "dev")] = dev
        sizes[(genre, "test")] = test
    return sizes


def generate_file(genre: str, split: str, count: int, seed: int) -> list[Sentence]:
    """The sentences of one synthetic file; the same arguments give the same list."""
    return [s for s, _ in generate_file_trees(genre, split, count, seed)]


def generate_file_trees(genre: str, split: str, count: int, seed: int) -> list[tuple[Sentence, list[tuple[str, int, int]]]]:
    """:func:`generate_file` with each sentence's gold constituents (:func:`generate_tree`)."""
    if genre not in GENRE_MIX:
        raise ValueError(f"unknown synthetic genre {genre!r}")
    rng = random.Random(f"ilm-synthetic/{seed}/{genre}/{split}")
    return [generate_tree(rng, genre) for _ in range(count)]
