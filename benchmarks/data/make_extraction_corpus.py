"""Writes `extraction_corpus.jsonl`: model outputs for the extraction benchmark, each with the answer it states.

The outputs imitate how several model families answer (lm-evaluation-harness few-shot base models, Llama 3,
Qwen, Mistral, GPT-style chat models, Gemma, Phi, DeepSeek-R1 with <think>), on problems and questions written
for this file, in the usual formats and in the kinds of issue 16 (fractions before punctuation, answer lines with
words, arithmetic after "the answer is", corrections, invented continuations, number words, mixed and scaled
numbers, truncation; wrapped letters, "(X) is correct", final option lines, lead-ins, hedges). The answer each
output states ("want", None when it states none) follows from how it was written, not from any extractor.

    python benchmarks/data/make_extraction_corpus.py   # rewrites benchmarks/data/extraction_corpus.jsonl

Seeded, so the file is the same on every run. Each line: task (gsm8k, mmlu_pro, math), family, kind, text, want
(canonical answer; LaTeX for math), finish_reason.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path

OUT = Path(__file__).with_name("extraction_corpus.jsonl")


@dataclass(frozen=True)
class WordProblem:
    question: str
    steps: tuple[tuple[str, str, str], ...]  # (what the step finds, arithmetic, its result as written)
    answer: str  # as a model writes it
    want: str  # canonical
    unit: str
    sentence: str  # the closing sentence, "{a}" standing for the answer


PROBLEMS = (
    WordProblem(
        "A hen house has 16 eggs a day; 3 are eaten and 4 baked. The rest sell at $2. Daily income?",
        (("eggs left to sell", "16 - 3 - 4", "9"), ("money from the sales", "9 * 2", "18")),
        "18",
        "18",
        "dollars",
        "Janet makes ${a} every day at the market.",
    ),
    WordProblem(
        "A robe takes 2 bolts of blue fiber and half that much white. How many bolts in all?",
        (("white fiber", "2 / 2", "1"), ("total fiber", "2 + 1", "3")),
        "3",
        "3",
        "bolts",
        "The robe takes {a} bolts in total.",
    ),
    WordProblem(
        "Tom reads 12 pages a day for 7 days, then 20 pages on Sunday. Pages read?",
        (("pages on weekdays", "12 * 7", "84"), ("total pages", "84 + 20", "104")),
        "104",
        "104",
        "pages",
        "Tom reads {a} pages in all.",
    ),
    WordProblem(
        "A school buys 15 boxes of 24 pencils and gives out 298. How many remain?",
        (("pencils bought", "15 * 24", "360"), ("pencils left", "360 - 298", "62")),
        "62",
        "62",
        "pencils",
        "There are {a} pencils left.",
    ),
    WordProblem(
        "Lisa earns $14 an hour and works 35 hours, then pays $90 for a bike. What is left?",
        (("her pay", "14 * 35", "490"), ("money left", "490 - 90", "400")),
        "400",
        "400",
        "dollars",
        "Lisa has ${a} left.",
    ),
    WordProblem(
        "A train goes 80 km/h for 3 hours and 60 km/h for 2 hours. How far does it go?",
        (("first leg", "80 * 3", "240"), ("second leg", "60 * 2", "120"), ("distance", "240 + 120", "360")),
        "360",
        "360",
        "km",
        "The train travels {a} km.",
    ),
    WordProblem(
        "Ben has 5 packs of 8 cards and loses 7 cards. How many cards does he have?",
        (("cards bought", "5 * 8", "40"), ("cards left", "40 - 7", "33")),
        "33",
        "33",
        "cards",
        "Ben has {a} cards now.",
    ),
    WordProblem(
        "A shirt costs $25 and is 20% off. Sam buys 3. What does he pay?",
        (("the discount", "25 * 0.2", "5"), ("sale price", "25 - 5", "20"), ("cost of 3", "20 * 3", "60")),
        "60",
        "60",
        "dollars",
        "Sam pays ${a} for the shirts.",
    ),
    WordProblem(
        "A farm has 48 cows and half as many goats, and 10 more sheep than goats. How many animals?",
        (("goats", "48 / 2", "24"), ("sheep", "24 + 10", "34"), ("animals", "48 + 24 + 34", "106")),
        "106",
        "106",
        "animals",
        "The farm has {a} animals.",
    ),
    WordProblem(
        "Mia saves $45 a month for a year and spends $120. How much has she saved?",
        (("saved in a year", "45 * 12", "540"), ("after spending", "540 - 120", "420")),
        "420",
        "420",
        "dollars",
        "Mia has ${a} saved.",
    ),
    WordProblem(
        "A tank holds 1,200 liters and leaks 35 liters a day for 20 days. How much is left?",
        (("water lost", "35 * 20", "700"), ("water left", "1200 - 700", "500")),
        "500",
        "500",
        "liters",
        "The tank has {a} liters left.",
    ),
    WordProblem(
        "Ann is 4 years older than Bo, who is 3 times as old as Cy, aged 5. How old is Ann?",
        (("Bo's age", "3 * 5", "15"), ("Ann's age", "15 + 4", "19")),
        "19",
        "19",
        "years",
        "Ann is {a} years old.",
    ),
    WordProblem(
        "A bakery makes 36 muffins an hour for 8 hours and sells all but 17. How many sold?",
        (("muffins made", "36 * 8", "288"), ("muffins sold", "288 - 17", "271")),
        "271",
        "271",
        "muffins",
        "The bakery sells {a} muffins.",
    ),
    WordProblem(
        "A class of 28 splits into teams of 4; each team gets 3 balls. How many balls?",
        (("teams", "28 / 4", "7"), ("balls", "7 * 3", "21")),
        "21",
        "21",
        "balls",
        "The class needs {a} balls.",
    ),
    WordProblem(
        "Gas costs $3.50 a gallon; a car uses 12 gallons a week. Cost over 4 weeks?",
        (("weekly cost", "3.50 * 12", "42"), ("cost over 4 weeks", "42 * 4", "168")),
        "168",
        "168",
        "dollars",
        "Gas costs ${a} over 4 weeks.",
    ),
    WordProblem(
        "A store had 2,500 items, sold 1,375 and received 640. How many items now?",
        (("after sales", "2500 - 1375", "1125"), ("after delivery", "1125 + 640", "1765")),
        "1,765",
        "1765",
        "items",
        "The store has {a} items now.",
    ),
    WordProblem(
        "A phone bill is $30 plus $0.10 per text; Kim sends 250 texts. What is the bill?",
        (("text charges", "0.10 * 250", "25"), ("bill", "30 + 25", "55")),
        "55",
        "55",
        "dollars",
        "Kim's bill is ${a}.",
    ),
    WordProblem(
        "The temperature is 8 degrees and drops 3 degrees an hour for 5 hours. What is it then?",
        (("total drop", "3 * 5", "15"), ("temperature", "8 - 15", "-7")),
        "-7",
        "-7",
        "degrees",
        "The temperature is {a} degrees.",
    ),
    WordProblem(
        "A runner jogs 2.5 km each morning and 1.5 km each evening for 6 days. Total distance?",
        (("daily distance", "2.5 + 1.5", "4"), ("total", "4 * 6", "24")),
        "24",
        "24",
        "km",
        "The runner covers {a} km.",
    ),
    WordProblem(
        "A library has 7 shelves of 45 books and lends out 96. How many books stay?",
        (("books", "7 * 45", "315"), ("books left", "315 - 96", "219")),
        "219",
        "219",
        "books",
        "The library keeps {a} books.",
    ),
)

# Answers that are fractions, mixed numbers or scaled numbers: (question, steps, answer as written, want, unit,
# sentence). Written separately because their answers are written in several ways.
SPECIAL_PROBLEMS = (
    WordProblem(
        "A pizza has 8 slices; Eva eats 2 and Leo 4. What fraction is left?",
        (("slices eaten", "2 + 4", "6"), ("slices left", "8 - 6", "2")),
        "1/4",
        "0.25",
        "",
        "So 2/8 = {a} of the pizza is left.",
    ),
    WordProblem(
        "3 pizzas are shared equally by 4 friends. How much pizza does each get?",
        (("pizza per friend", "3 / 4", "3/4"),),
        "3/4",
        "0.75",
        "of a pizza",
        "Each friend gets {a} of a pizza.",
    ),
    WordProblem(
        "A bag has 4 red and 8 blue marbles. What fraction is red?",
        (("marbles", "4 + 8", "12"), ("red share", "4 / 12", "1/3")),
        "1/3",
        "1/3",
        "",
        "The fraction of red marbles is {a}.",
    ),
    WordProblem(
        "A recipe needs 5 cups of flour for 2 cakes. How much for one cake?",
        (("flour per cake", "5 / 2", "2.5"),),
        "2 1/2",
        "2.5",
        "cups",
        "One cake needs {a} cups of flour.",
    ),
    WordProblem(
        "A rope of 15 m is cut into 4 equal parts. How long is each?",
        (("length of a part", "15 / 4", "3.75"),),
        "3 3/4",
        "3.75",
        "m",
        "Each part is {a} m long.",
    ),
    WordProblem(
        "A city of 800,000 grows by 400,000. What is its population now?",
        (("population", "800000 + 400000", "1200000"),),
        "1.2 million",
        "1200000",
        "people",
        "The city now has {a} people.",
    ),
    WordProblem(
        "A firm earns $1.5 million a quarter. What does it earn in a year?",
        (("yearly earnings", "1.5 * 4", "6"),),
        "6 million",
        "6000000",
        "dollars",
        "The firm earns ${a} a year.",
    ),
    WordProblem(
        "A jug holds 7 liters; Max pours out 2 liters. What share of the jug is left?",
        (("liters left", "7 - 2", "5"),),
        "5/7",
        "5/7",
        "",
        "The jug is {a} full.",
    ),
)

_WORDS = (
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen "
    "seventeen eighteen nineteen"
).split()
_TENS = "_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()


def in_words(n: int) -> str:
    """English words for 0 <= n < 1000 ("one hundred and four")."""
    if n < 20:
        return _WORDS[n]
    if n < 100:
        return _TENS[n // 10] + ("-" + _WORDS[n % 10] if n % 10 else "")
    rest = n % 100
    return _WORDS[n // 100] + " hundred" + (" and " + in_words(rest) if rest else "")


def worked(problem: WordProblem, style: str) -> str:
    """The steps of a solution in a family's layout."""
    lines = []
    for i, (what, expr, result) in enumerate(problem.steps, 1):
        if style == "gsm8k":
            lines.append(f"The {what}: {expr} = <<{expr.replace(' ', '')}={result}>>{result}.")
        elif style == "llama3":
            lines.append(f"## Step {i}: Calculate the {what}\nThe {what} is {expr} = {result}.\n")
        elif style == "qwen":
            lines.append(f"{i}. **Find the {what}:**\n   \\[\n   {expr} = {result}\n   \\]")
        elif style == "gpt":
            lines.append(f"{i}. **{what.capitalize()}:** {expr} = {result}")
        elif style == "gemma":
            lines.append(f"* **{what.capitalize()}:** {expr} = {result}")
        else:  # prose (Mistral, Phi, base models)
            lines.append(f"The {what} is {expr} = {result}.")
    return "\n".join(lines) if style != "prose" else " ".join(lines)


def sentence(problem: WordProblem, answer: str | None = None) -> str:
    return problem.sentence.format(a=answer or problem.answer)


def other(problem: WordProblem, rng: random.Random) -> WordProblem:
    return rng.choice([p for p in PROBLEMS if p is not problem])


# Each family writes a complete answer in its usual layout.
def family_outputs(p: WordProblem, rng: random.Random) -> list[tuple[str, str, str, str | None, str]]:
    """(family, kind, text, want, finish_reason) of the usual layouts."""
    a, q = p.answer, other(p, rng)
    r1_draft = p.steps[-1][2]
    return [
        ("gsm8k-teacher", "standard", f"{worked(p, 'gsm8k')}\n#### {a}", p.want, "stop"),
        ("llama2-base-fewshot", "standard", f"{worked(p, 'prose')} The answer is {a}.", p.want, "stop"),
        (
            "llama2-base-fewshot",
            "run-on",
            f"{worked(p, 'prose')} The answer is {a}.\n\nQ: {q.question}\nA: "
            f"{worked(q, 'prose')} The answer is {q.answer}.",
            p.want,
            "stop",
        ),
        (
            "llama3-instruct",
            "standard",
            f"{worked(p, 'llama3')}\nThe final answer is: $\\boxed{{{a}}}$",
            p.want,
            "stop",
        ),
        (
            "qwen2.5-instruct",
            "standard",
            f"To solve this, we work step by step.\n\n{worked(p, 'qwen')}\n\n"
            f"{sentence(p)} Therefore, the final answer is \\(\\boxed{{{a}}}\\).",
            p.want,
            "stop",
        ),
        ("mistral-instruct", "standard", f"{worked(p, 'prose')} {sentence(p)}", p.want, "stop"),
        (
            "gpt-style",
            "standard",
            f"Let's break it down:\n\n{worked(p, 'gpt')}\n\n**Answer:** {a} {p.unit}",
            p.want,
            "stop",
        ),
        (
            "gpt-style",
            "standard",
            f"Let's break it down:\n\n{worked(p, 'gpt')}\n\n### Final Answer\n{sentence(p)}",
            p.want,
            "stop",
        ),
        (
            "gemma-it",
            "standard",
            f"Here's how to solve it:\n\n{worked(p, 'gemma')}\n\n**Answer:** {sentence(p)}",
            p.want,
            "stop",
        ),
        ("phi-3", "standard", f"{worked(p, 'prose')}\n\nFinal Answer: {a}", p.want, "stop"),
        (
            "deepseek-r1",
            "think",
            f"<think>\nOkay, let me see. {worked(p, 'prose')} Wait, let me double-check "
            f"that. Yes, {r1_draft}.\n</think>\n\n{worked(p, 'gpt')}\n\n**Final Answer**\n\\[\n\\boxed{{{a}}}\n\\]",
            p.want,
            "stop",
        ),
    ]


def kind_outputs(p: WordProblem, rng: random.Random) -> list[tuple[str, str, str, str | None, str]]:
    """(family, kind, text, want, finish_reason) of the kinds issue 16 lists, for one integer problem."""
    a, q = p.answer, other(p, rng)
    value = int(p.want)
    last_what, last_expr, _ = p.steps[-1]
    wrong = str(value + rng.choice([-6, -2, 2, 5, 10]))
    cut = rng.randint(1, max(1, len(worked(p, "prose")) - 20))
    outputs = [
        (
            "gpt-style",
            "answer-line-words",
            f"{worked(p, 'gpt')}\n\n**Answer:** {a} {p.unit} ({last_expr})",
            p.want,
            "stop",
        ),
        (
            "mistral-instruct",
            "answer-line-words",
            f"{worked(p, 'prose')}\nAnswer: {a} {p.unit}, since {last_expr} = {a}.",
            p.want,
            "stop",
        ),
        (
            "llama2-base-fewshot",
            "answer-is-arithmetic",
            " ".join(f"The {w} is {e} = {v}." for w, e, v in p.steps[:-1]) + f" The answer is {last_expr} = {a}.",
            p.want,
            "stop",
        ),
        (
            "gsm8k-teacher",
            "self-correction",
            f"{worked(p, 'gsm8k')}\n#### {wrong}\nWait, I made a mistake in the "
            f"last step: {last_expr} = {a}.\n#### {a}",
            p.want,
            "stop",
        ),
        (
            "qwen2.5-instruct",
            "self-correction",
            f"{worked(p, 'prose')}\n#### {wrong}\n\nActually, let me recheck "
            f"the {last_what}: {last_expr} = {a}. The answer is {a}.",
            p.want,
            "stop",
        ),
        (
            "llama2-base-fewshot",
            "run-on-example",
            f"{worked(p, 'gsm8k')}\n#### {a}\n\nExample 2:\n{q.question}\n{worked(q, 'gsm8k')}\n#### {q.answer}",
            p.want,
            "stop",
        ),
        (
            "qwen2.5-instruct",
            "chat-tokens",
            f"{worked(p, 'prose')} {sentence(p)}<|im_end|>\n<|im_start|>user\n"
            f"{q.question}<|im_end|>\n<|im_start|>assistant\n{worked(q, 'prose')} {sentence(q)}",
            p.want,
            "stop",
        ),
        (
            "llama3-instruct",
            "chat-tokens",
            f"{worked(p, 'llama3')}\nThe final answer is {a}.<|eot_id|>"
            f"<|start_header_id|>user<|end_header_id|>\n\n{q.question}<|eot_id|><|start_header_id|>assistant"
            f"<|end_header_id|>\n\n{worked(q, 'llama3')}\nThe final answer is {q.answer}.",
            p.want,
            "stop",
        ),
        ("mistral-instruct", "truncated", worked(p, "prose")[:cut], None, "length"),
        (
            "deepseek-r1",
            "truncated",
            f"<think>\nOkay, so the question is about {p.unit or 'this'}. {worked(p, 'prose')[:cut]}",
            None,
            "length",
        ),
        (
            "llama3-instruct",
            "truncated",
            worked(p, "llama3")[: rng.randint(20, len(worked(p, "llama3")) - 5)],
            None,
            "length",
        ),
    ]
    if 0 <= value < 1000:
        words = in_words(value)
        outputs += [
            ("mistral-instruct", "number-words", f"{worked(p, 'prose')} So the answer is {words}.", p.want, "stop"),
            ("gemma-it", "number-words", f"{worked(p, 'gemma')}\n\n**Answer:** {words} {p.unit}.", p.want, "stop"),
        ]
    return outputs


def special_outputs(p: WordProblem, rng: random.Random) -> list[tuple[str, str, str, str | None, str]]:
    """Fractions, mixed and scaled numbers, written the ways models write them."""
    a = p.answer
    latex = a
    if "illion" in a:
        number, scale = a.split()
        latex = f"{number} \\text{{ {scale}}}"
    elif "/" in a:
        whole, _, frac = a.rpartition(" ")
        numerator, denominator = frac.split("/")
        latex = f"{whole}\\frac{{{numerator}}}{{{denominator}}}".strip()
    kind = "scaled" if "illion" in a else "mixed" if " " in a and "/" in a else "fraction"
    return [
        ("mistral-instruct", kind, f"{worked(p, 'prose')} {sentence(p)}", p.want, "stop"),
        ("llama2-base-fewshot", kind, f"{worked(p, 'prose')} The answer is {a}.", p.want, "stop"),
        ("qwen2.5-instruct", kind, f"{worked(p, 'qwen')}\n\nThus the answer is $\\boxed{{{latex}}}$.", p.want, "stop"),
        ("gpt-style", kind, f"{worked(p, 'gpt')}\n\n**Answer:** {a} {p.unit}".rstrip(), p.want, "stop"),
        ("llama3-instruct", kind, f"{worked(p, 'llama3')}\nThe final answer is: ${latex}$.", p.want, "stop"),
        ("phi-3", kind, f"{worked(p, 'prose')}\n\nFinal Answer: {a}.", p.want, "stop"),
    ]


NO_ANSWER_OUTPUTS = (
    ("gpt-style", "refusal", "I'm sorry, but the problem does not give enough information to find an answer."),
    ("llama3-instruct", "refusal", "The question seems to be missing the price of the apples, so I cannot say."),
    ("mistral-instruct", "refusal", "Could you clarify what is meant by 'the rest'? It is unclear."),
    ("deepseek-r1", "truncated", "<think>\nHmm, this is tricky. Let me think about what the question means by"),
)


@dataclass(frozen=True)
class Question:
    text: str
    options: tuple[str, ...]
    letter: str
    reasoning: str  # mentions other options, as models do


QUESTIONS = (
    Question(
        "Which gas do plants take in for photosynthesis?",
        (
            "Oxygen",
            "Nitrogen",
            "Carbon dioxide",
            "Helium",
            "Argon",
            "Hydrogen",
            "Methane",
            "Ozone",
            "Neon",
            "Water vapour",
        ),
        "C",
        "Plants fix carbon from the air. Oxygen (A) is released, not taken in, and nitrogen (B) is not used "
        "directly. Carbon dioxide is the input.",
    ),
    Question(
        "What is the SI unit of force?",
        ("Joule", "Watt", "Pascal", "Newton", "Volt", "Tesla", "Coulomb", "Ohm", "Henry", "Farad"),
        "D",
        "Force is mass times acceleration, kg m/s^2. The joule (A) is energy and the pascal (C) is pressure. "
        "The unit of force is the newton.",
    ),
    Question(
        "A car accelerates from rest at 3 m/s^2 for 4 s. What is its final speed?",
        ("7 m/s", "1.3 m/s", "3 m/s", "4 m/s", "24 m/s", "12 m/s", "10 m/s", "16 m/s", "9 m/s", "6 m/s"),
        "F",
        "v = at = 3 * 4 = 12 m/s. Option E doubles it and option A adds the numbers.",
    ),
    Question(
        "Who wrote 'The Wealth of Nations'?",
        (
            "Karl Marx",
            "John Keynes",
            "David Ricardo",
            "Milton Friedman",
            "Thomas Malthus",
            "John Mill",
            "Adam Smith",
            "Alfred Marshall",
            "Friedrich Hayek",
            "Jean Say",
        ),
        "G",
        "The Wealth of Nations (1776) founded classical economics. Ricardo (C) and Malthus (E) came later.",
    ),
    Question(
        "Which organelle produces most of a cell's ATP?",
        (
            "Nucleus",
            "Ribosome",
            "Golgi body",
            "Lysosome",
            "Vacuole",
            "Chloroplast",
            "Centriole",
            "Mitochondrion",
            "Cell wall",
            "Peroxisome",
        ),
        "H",
        "ATP comes mainly from oxidative phosphorylation. The chloroplast (F) makes ATP only in light, for "
        "its own use. The mitochondrion is the powerhouse.",
    ),
    Question(
        "What is the derivative of x^3?",
        ("x^2", "3x", "3x^3", "x^4/4", "2x^2", "3", "x^3", "3x^4", "3x^2", "6x"),
        "I",
        "By the power rule, d/dx x^n = n x^(n-1), so the derivative is 3x^2. Option D is the integral.",
    ),
    Question(
        "Which amendment abolished slavery in the United States?",
        (
            "First",
            "Fifth",
            "Tenth",
            "Fourteenth",
            "Fifteenth",
            "Nineteenth",
            "Second",
            "Eighth",
            "Twenty-first",
            "Thirteenth",
        ),
        "J",
        "The Thirteenth Amendment (1865) abolished slavery; the Fourteenth (D) is about citizenship.",
    ),
    Question(
        "What is the pH of a neutral solution at 25 C?",
        ("7", "0", "1", "14", "5", "9", "3", "12", "6", "8"),
        "A",
        "At 25 C, [H+] = 10^-7 M in pure water, so pH = 7. Option D is the top of the scale.",
    ),
    Question(
        "Which of these is a prime number?",
        ("21", "29", "27", "33", "39", "45", "49", "51", "55", "57"),
        "B",
        "21 = 3 * 7, 27 = 3^3, 33 = 3 * 11, 49 = 7^2 and 51 = 3 * 17; 29 has no divisor but 1 and itself.",
    ),
    Question(
        "In which case is a contract voidable rather than void?",
        (
            "Illegal purpose",
            "Lack of consent by fraud",
            "Impossible object",
            "Wagering",
            "No consideration",
            "Restraint of trade",
            "Uncertain terms",
            "Minor's agreement",
            "Mistake of law",
            "Public policy",
        ),
        "B",
        "Fraud gives the deceived party the choice to rescind, so the contract is voidable; an illegal "
        "purpose (A) makes it void.",
    ),
    Question(
        "What is the time complexity of binary search?",
        ("O(n)", "O(n log n)", "O(1)", "O(n^2)", "O(log n)", "O(2^n)", "O(sqrt n)", "O(n^3)", "O(log log n)", "O(n!)"),
        "E",
        "Each comparison halves the interval, so about log2(n) steps. O(n) (A) is linear search.",
    ),
    Question(
        "Which philosopher wrote the 'Critique of Pure Reason'?",
        ("Hume", "Hegel", "Locke", "Descartes", "Spinoza", "Leibniz", "Nietzsche", "Kierkegaard", "Kant", "Plato"),
        "I",
        "The Critique of Pure Reason (1781) is Immanuel Kant's; Hume (A) influenced it.",
    ),
    Question(
        "What is the main cause of the seasons on Earth?",
        (
            "Distance to the Sun",
            "Solar flares",
            "Axial tilt",
            "The Moon",
            "Ocean currents",
            "Clouds",
            "Volcanoes",
            "Rotation speed",
            "Magnetic field",
            "Orbital speed",
        ),
        "C",
        "Seasons come from the 23.5 degree tilt of the axis; the distance (A) varies too little.",
    ),
)


def options_block(question: Question) -> str:
    return "\n".join(f"({letter}) {option}" for letter, option in zip("ABCDEFGHIJ", question.options, strict=False))


def mmlu_outputs(q: Question, rng: random.Random) -> list[tuple[str, str, str, str | None, str]]:
    """(family, kind, text, want, finish_reason) for one question, in the usual layouts and the issue's kinds."""
    letter, r = q.letter, q.reasoning
    value = q.options["ABCDEFGHIJ".index(letter)]
    wrong = rng.choice([x for x in "ABCDEFGHIJ"[: len(q.options)] if x != letter])
    nxt = rng.choice([x for x in QUESTIONS if x is not q])
    cut = rng.randint(10, len(r) - 5)
    return [
        ("mmlu-pro-fewshot", "standard", f" {r} The answer is ({letter}).", letter, "stop"),
        (
            "mmlu-pro-fewshot",
            "run-on",
            f" {r} The answer is ({letter}).\n\nQuestion:\n{nxt.text}\nOptions:\n"
            f"{options_block(nxt)}\nAnswer: Let's think step by step. {nxt.reasoning} The answer is ({nxt.letter}).",
            letter,
            "stop",
        ),
        (
            "llama3-instruct",
            "standard",
            f"## Step 1: Analyze the question\n{r}\n\nThe final answer is: $\\boxed{{{letter}}}$",
            letter,
            "stop",
        ),
        ("qwen2.5-instruct", "standard", f"{r}\n\n**Answer: ({letter}) {value}**", letter, "stop"),
        ("mistral-instruct", "standard", f"{r} Therefore, the correct answer is ({letter}) {value}.", letter, "stop"),
        ("gpt-style", "standard", f"{r}\n\nAnswer: {letter}", letter, "stop"),
        (
            "deepseek-r1",
            "think",
            f"<think>\n{r} Hmm, could it be ({wrong})? No, that does not fit. So it's "
            f"{letter}.\n</think>\n\nThe answer is ({letter}).",
            letter,
            "stop",
        ),
        ("gpt-style", "wrapped", f'{r}\n\nThe answer is "{letter}".', letter, "stop"),
        ("qwen2.5-math", "wrapped", f"{r}\n\nThe answer is $\\text{{({letter})}}$.", letter, "stop"),
        ("mistral-instruct", "letter-correct", f"{r} ({letter}) is the correct answer.", letter, "stop"),
        ("llama3-instruct", "letter-correct", f"{r}\n\nSo option ({letter}) is correct.", letter, "stop"),
        ("gemma-it", "final-line", f"{r}\n\n({letter}) {value}", letter, "stop"),
        ("phi-3", "lead-in", f"{r}\nAnswer: I think it's ({letter})", letter, "stop"),
        ("mistral-instruct", "hedge", f"{r} The answer is either ({letter}) or ({wrong}).", None, "stop"),
        ("gpt-style", "hedge", f"{r}\n\nAnswer: {min(letter, wrong)}/{max(letter, wrong)}", None, "stop"),
        ("deepseek-r1", "truncated", f"<think>\n{r[:cut]}", None, "length"),
        ("llama3-instruct", "truncated", f"## Step 1: Analyze the options\n{r[:cut]}", None, "length"),
    ]


MMLU_NO_ANSWER = (
    ("gpt-style", "refusal", "I cannot determine the answer without more context about the scenario."),
    ("llama3-instruct", "refusal", "This question is ambiguous; several options could apply."),
)


# Competition math (the `math` task): (family, kind, text, want as LaTeX or None, finish_reason). Our reader takes
# the last box (or the Minerva sentence) only, by design; these show what that costs against math-verify.
MATH_OUTPUTS = (
    (
        "qwen2.5-math",
        "boxed",
        "The roots sum to $-b/a = 3/2$.\n\nThus the answer is $\\boxed{\\frac{3}{2}}$.",
        "\\frac{3}{2}",
    ),
    (
        "qwen2.5-math",
        "boxed",
        ("So $x^2 = 18$ and $x = 3\\sqrt{2}$. The final answer is \\(\\boxed{3\\sqrt{2}}\\)."),
        "3\\sqrt{2}",
    ),
    (
        "llama3-instruct",
        "boxed",
        ("## Step 1: Solve\n$2x + 7 = 19$ gives $x = 6$.\n\nThe final answer is: $\\boxed{6}$"),
        "6",
    ),
    (
        "deepseek-r1",
        "think",
        ("<think>\nMaybe \\boxed{4}? No, 2^3 = 8.\n</think>\n\nThe value is $\\boxed{8}$."),
        "8",
    ),
    (
        "qwen2.5-math",
        "boxed",
        "The solution set is \\boxed{\\{1, 2\\}}.",
        "\\{1,2\\}",
    ),
    (
        "qwen2.5-math",
        "boxed",
        "Hence the interval is $\\boxed{(-\\infty, 3]}$.",
        "(-\\infty,3]",
    ),
    (
        "gpt-style",
        "boxed",
        "The probability is $\\boxed{0.25}$.",
        "\\frac{1}{4}",
    ),
    (
        "gpt-style",
        "boxed",
        "So $\\boxed{x = 5}$.",
        "5",
    ),
    (
        "llama3-instruct",
        "boxed",
        "The area is $\\boxed{12\\pi}$ square units.",
        "12\\pi",
    ),
    (
        "mistral-instruct",
        "boxed",
        "The slope is \\boxed{-\\dfrac{2}{3}}.",
        "-\\frac{2}{3}",
    ),
    (
        "minerva-fewshot",
        "minerva",
        ("We have $3^4 - 2^5 = 49$.\nFinal Answer: The final answer is $49$. I hope it is correct."),
        "49",
    ),
    (
        "minerva-fewshot",
        "minerva",
        ("So $r = \\frac{1}{2}$.\nFinal Answer: The final answer is $\\frac{1}{2}$. I hope it is correct."),
        "\\frac{1}{2}",
    ),
    (
        "minerva-fewshot",
        "run-on",
        (
            "Final Answer: The final answer is $7$. I hope it is correct.\n\nProblem:\nWhat"
            " is $2+2$?\n\nSolution: $4$. Final Answer: The final answer is $4$."
        ),
        "7",
    ),
    (
        "mistral-instruct",
        "unboxed",
        "Therefore, $x = \\frac{5}{2}$.",
        "\\frac{5}{2}",
    ),
    (
        "gpt-style",
        "unboxed",
        "The answer is $42$.",
        "42",
    ),
    (
        "llama3-instruct",
        "unboxed",
        "The final answer is: $\\sqrt{3}$",
        "\\sqrt{3}",
    ),
    (
        "phi-3",
        "unboxed",
        "Final answer: 1/6",
        "\\frac{1}{6}",
    ),
    (
        "gemma-it",
        "unboxed",
        "**Answer:** The sum is $2^{10} = 1024$.",
        "1024",
    ),
    (
        "qwen2.5-math",
        "truncated",
        ("We expand $(x+1)^5$ and collect the terms: the coefficient of $x^3$ is $\\binom{5}{3}"),
        None,
    ),
    (
        "deepseek-r1",
        "truncated",
        "<think>\nLet me compute the determinant: $ad - bc = 4 \\cdot 3 - 2",
        None,
    ),
    (
        "qwen2.5-math",
        "truncated",
        "So the answer is \\boxed{\\frac{7",
        None,
    ),
    (
        "gpt-style",
        "refusal",
        "I'm sorry, the problem statement seems incomplete.",
        None,
    ),
)


def records() -> list[dict]:
    rng = random.Random(16)
    rows = []
    for problem in PROBLEMS:
        rows += [("gsm8k", *row) for row in family_outputs(problem, rng) + kind_outputs(problem, rng)]
    for problem in SPECIAL_PROBLEMS:
        rows += [("gsm8k", *row) for row in special_outputs(problem, rng)]
    rows += [
        ("gsm8k", family, kind, text, None, "length" if kind == "truncated" else "stop")
        for family, kind, text in NO_ANSWER_OUTPUTS
    ]
    for question in QUESTIONS:
        rows += [("mmlu_pro", *row) for row in mmlu_outputs(question, rng)]
    rows += [("mmlu_pro", family, kind, text, None, "stop") for family, kind, text in MMLU_NO_ANSWER]
    rows += [
        ("math", family, kind, text, want, "length" if kind == "truncated" else "stop")
        for family, kind, text, want in MATH_OUTPUTS
    ]
    keys = ("task", "family", "kind", "text", "want", "finish_reason")
    return [dict(zip(keys, row, strict=True)) for row in rows]


def main() -> None:
    rows = records()
    OUT.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows), encoding="utf-8")
    print(f"wrote {len(rows)} outputs to {OUT}")


if __name__ == "__main__":
    main()
