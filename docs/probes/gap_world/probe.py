"""Gap-world probe (throw-away research code, plain torch, CPU, one thread).

World "pair-sum": a list of six distinct numbers 01..19 and a target; exactly one pair of the list sums to the
target.  Prompt "L03 08 12 05 09 14T17:", answer (one form for everyone, chosen by FORM):
    FORM=pair  "08 09"       (the pair, ascending)
    FORM=eq    "08+09=17"    (the pair and its claimed sum; a wrong pair usually claims the target, a false fact)
Checking an answer is forward work (one addition fact + a comparison with the target); producing one is a search
over the 15 pairs.  The student (char-level GPT) is pretrained on all addition facts "08+09=17" plus task lines
of pretraining questions (disjoint from every other split), stopped early so that its search is weak while the
facts are learnt.  The teacher is scripted: right with a per-question probability, otherwise a "trap" pair
(sum close to the target) or a random pair, so 12-sample votes are right most of the time but not always.

Pipeline per seed: SFT (lr/epochs from a 4-setting sweep, chosen by greedy agreement with pseudo-labels on a
dev split of the labelled questions; no gold) -> student samples (T=1) on labelled questions -> RM (init = SFT
student + scalar head; Bradley-Terry pairs + pointwise BCE on vote labels of teacher + student samples) ->
gate G2 on held-out questions (gold used only to measure) -> RL (REINFORCE, group-mean baseline, k1 KL to SFT)
with rewards gold / form / rm.

Run (from this folder):  nice -n 10 python probe.py STAGE SEEDS
    STAGE = g2   : pretraining (cached in ./ckpt) + SFT sweep + RM + G2 numbers
    STAGE = all  : the above + RL(gold, form, rm) and the paired summary
Env knobs: FORM (pair|eq), N_LAB (labelled questions for SFT/RM, default 200), K_S (student samples per question
for the RM, 16), RL_POOL (600; more: fresh unlabelled RL prompts drawn after all other splits), RL_EVAL (0; n: test
greedy and dev agreement every n RL steps), RL_LRS (stage g1: RL learning rates), SCHEMES (stage all: gold,form,rm[,vote]), RM_EPOCHS (3), PRE_MAX (max pretraining steps), STUDENT_TARGET (stop pretraining at the first
eval with pretraining-dev greedy >= this), D/L (student width/depth), RL_STEPS (80), TAG (log tag), RM_LR,
RM_VARIANTS ("lr:epochs,..." extra RMs evaluated for G2), POOL (last|prev|mean: where the RM head reads),
ROPE (1: rotary positions, 0: learned absolute), JUDGE (0; 1: judged statements "a+b=c"->Y/N in pretraining;
2: judged task answers of pretraining questions), LABEL (vote; gold = a ceiling diagnostic, never a gate),
PAIR_CAP (8: Bradley-Terry pairs per labelled question), PARTS (0; 1: "step-level" labels, see train_rm: one
label per answer part, pair and claimed sum, two heads).
N_LAB > 600: the first 600 labelled questions are those of N_LAB=600 and the rest are drawn after the 30,000
pretraining questions, so the cached student (pretrained with the N_LAB=600 draws) has never seen them.
Only FORM=eq was run (see results.md).  The RL check was
    FORM=eq ROPE=0 N_LAB=600 RL_STEPS=60 nice -n 10 python probe.py all 0,1,2
and the first setting that passes G2 on 3 seeds (V8 in results.md; 1e-3/5 passes from N_LAB=600 on 2 of 3)
    FORM=eq ROPE=0 JUDGE=0 N_LAB=1200 RM_VARIANTS=1e-3:5 TAG=_n1200 nice -n 10 python probe.py g2 0,1,2
"""
import copy, itertools, json, math, os, random, sys, time
import torch, torch.nn as nn, torch.nn.functional as F

torch.set_num_threads(1)
HERE = os.path.dirname(os.path.abspath(__file__))
T0 = time.time()
TAG = os.environ.get('TAG', '')


def log(*a):
    print(f'[{time.time() - T0:6.1f}s cpu {time.process_time():6.1f}s]{TAG}', *a, flush=True)


FORM = os.environ.get('FORM', 'eq')
N_LAB = int(os.environ.get('N_LAB', 200))
N_DEVLAB = 80                              # labelled questions held out of SFT/RM for choosing the SFT setting
K_S = int(os.environ.get('K_S', 16))
RM_EPOCHS = int(os.environ.get('RM_EPOCHS', 3))
RM_LR = float(os.environ.get('RM_LR', 3e-4))
PRE_MAX = int(os.environ.get('PRE_MAX', 4000))
STUDENT_TARGET = float(os.environ.get('STUDENT_TARGET', 0.35))
FACTS_TARGET = float(os.environ.get('FACTS_TARGET', 0.97))
D, L = int(os.environ.get('D', 64)), int(os.environ.get('L', 2))
POOL = os.environ.get('POOL', 'last')
LABEL = os.environ.get('LABEL', 'vote')   # 'gold': diagnostic ceiling only, never a gate number
RL_STEPS = int(os.environ.get('RL_STEPS', 80))
KL = float(os.environ.get('KL', 0.1))
RL_LR = float(os.environ.get('RL_LR', 3e-4))
N_LIST, MAXN = 6, 19

# ---------------------------------------------------------------- world
CHARS = list('0123456789 +=LT:YN')
PAD, BOS, EOS = 0, 1, 2
STOI = {c: i + 3 for i, c in enumerate(CHARS)}
ITOS = {i: c for c, i in STOI.items()}
VOCAB = len(CHARS) + 3


def make_q(rng):
    """(list, target, gold pair) with exactly one pair of the list summing to the target."""
    while True:
        xs = rng.sample(range(1, MAXN + 1), N_LIST)
        sums = {}
        for a, b in itertools.combinations(xs, 2):
            sums.setdefault(a + b, []).append((min(a, b), max(a, b)))
        uniq = [t for t, ps in sums.items() if len(ps) == 1]
        if uniq:
            t = rng.choice(uniq)
            return tuple(xs), t, sums[t][0]


def prompt_of(q):
    return 'L' + ' '.join(f'{x:02d}' for x in q[0]) + f'T{q[1]:02d}:'


def answer_of(a, b, s=None):
    return f'{a:02d} {b:02d}' if FORM == 'pair' else f'{a:02d}+{b:02d}={(a + b if s is None else s):02d}'


def parse(resp):
    """The answered pair (a, b) or None if malformed."""
    if FORM == 'pair':
        ok = len(resp) == 5 and resp[2] == ' ' and (resp[:2] + resp[3:]).isdigit()
        return (int(resp[:2]), int(resp[3:5])) if ok else None
    ok = len(resp) == 8 and resp[2] == '+' and resp[5] == '=' and (resp[:2] + resp[3:5] + resp[6:]).isdigit()
    return (int(resp[:2]), int(resp[3:5])) if ok else None


def form_ok(q, resp):
    """Well formed and blind to correctness: two ascending numbers of the list (eq form: claiming the target)."""
    pr = parse(resp)
    if pr is None or not (pr[0] < pr[1] and pr[0] in q[0] and pr[1] in q[0]):
        return False
    return FORM == 'pair' or int(resp[6:8]) == q[1]


def correct(q, resp):
    return parse(resp) == q[2]


def enc(s):
    return [STOI[c] for c in s]


# ---------------------------------------------------------------- model
ROPE = int(os.environ.get('ROPE', 1))   # rotary positions (relative), so facts learnt at line start transfer


def rope(x, pos0):
    dh = x.shape[-1]
    inv = 1.0 / (100 ** (torch.arange(0, dh, 2).float() / dh))
    ang = torch.arange(pos0, pos0 + x.shape[2]).float()[:, None] * inv[None]
    cos, sin = ang.cos(), ang.sin()
    x1, x2 = x[..., 0::2], x[..., 1::2]
    return torch.stack([x1 * cos - x2 * sin, x1 * sin + x2 * cos], -1).flatten(-2)


class Block(nn.Module):
    def __init__(self, d, h):
        super().__init__()
        self.h, self.ln1, self.ln2 = h, nn.LayerNorm(d), nn.LayerNorm(d)
        self.qkv, self.proj = nn.Linear(d, 3 * d), nn.Linear(d, d)
        self.mlp = nn.Sequential(nn.Linear(d, 4 * d), nn.GELU(), nn.Linear(4 * d, d))

    def forward(self, x, cache=None, pos0=0):
        B, T, Dm = x.shape
        q, k, v = (t.view(B, T, self.h, Dm // self.h).transpose(1, 2) for t in self.qkv(self.ln1(x)).split(Dm, 2))
        if ROPE:
            q, k = rope(q, pos0), rope(k, pos0)
        if cache is not None:
            if 'k' in cache:
                k, v = torch.cat([cache['k'], k], 2), torch.cat([cache['v'], v], 2)
            cache['k'], cache['v'] = k, v
        y = F.scaled_dot_product_attention(q, k, v, is_causal=T > 1)
        x = x + self.proj(y.transpose(1, 2).reshape(B, T, Dm))
        return x + self.mlp(self.ln2(x))


class GPT(nn.Module):
    def __init__(self, d=64, n_layer=2, h=4, T=40):
        super().__init__()
        self.tok, self.pos = nn.Embedding(VOCAB, d), nn.Embedding(T, d)
        self.blocks = nn.ModuleList(Block(d, h) for _ in range(n_layer))
        self.ln, self.head = nn.LayerNorm(d), nn.Linear(d, VOCAB, bias=False)
        self.value = nn.Linear(d, 1)           # used by the reward model only

    def hidden(self, idx, caches=None, pos0=0):
        x = self.tok(idx) + (0 if ROPE else self.pos(torch.arange(pos0, pos0 + idx.shape[1])))
        for i, b in enumerate(self.blocks):
            x = b(x, None if caches is None else caches[i], pos0)
        return self.ln(x)

    def forward(self, idx):
        return self.head(self.hidden(idx))


def n_params(m):
    return sum(p.numel() for n, p in m.named_parameters() if not n.startswith('value'))


def batch(rows):
    """rows: (prompt, response) -> token ids and a mask over the response tokens (+EOS) as targets."""
    seqs = [[BOS] + enc(p) + enc(r) + [EOS] for p, r in rows]
    T = max(map(len, seqs))
    idx, mask = torch.full((len(seqs), T), PAD), torch.zeros(len(seqs), T - 1)
    for i, ((p, _), s) in enumerate(zip(rows, seqs)):
        idx[i, :len(s)] = torch.tensor(s)
        mask[i, len(p):len(s) - 1] = 1
    return idx, mask


def lm_loss(m, rows):
    idx, mask = batch(rows)
    nll = F.cross_entropy(m(idx[:, :-1]).reshape(-1, VOCAB), idx[:, 1:].reshape(-1), reduction='none')
    return (nll.view_as(mask) * mask).sum() / mask.sum()


def seq_logprob(m, idx, mask):
    return (F.log_softmax(m(idx[:, :-1]), -1).gather(2, idx[:, 1:, None])[..., 0] * mask).sum(1)


@torch.no_grad()
def generate(m, prompts, temp=1.0, gen=None, max_new=10, chunk=1024):
    out = []
    for c in range(0, len(prompts), chunk):        # all prompts have the same length in this world
        sub = prompts[c:c + chunk]
        idx = torch.tensor([[BOS] + enc(p) for p in sub])
        caches = [dict() for _ in m.blocks]
        logits, pos = m.head(m.hidden(idx, caches)[:, -1]), idx.shape[1]
        done, toks = torch.zeros(len(sub), dtype=torch.bool), []
        for _ in range(max_new):
            nxt = logits.argmax(-1) if temp == 0 else torch.multinomial(F.softmax(logits / temp, -1), 1, generator=gen)[:, 0]
            nxt = torch.where(done, torch.full_like(nxt, PAD), nxt)
            toks.append(nxt)
            done |= nxt == EOS
            if done.all():
                break
            logits, pos = m.head(m.hidden(nxt[:, None], caches, pos)[:, -1]), pos + 1
        for row in torch.stack(toks, 1).tolist():
            s = ''
            for t in row:
                if t < 3:                      # PAD, BOS, EOS end the answer
                    break
                s += ITOS.get(t, '?')
            out.append(s)
    return out


PARTS = int(os.environ.get('PARTS', 0))
PAIR_CAP = int(os.environ.get('PAIR_CAP', 8))    # BT pairs per labelled question


def rm_parts(rm, prompts, resps):
    """PARTS=1: two logits per answer, pair part (value head at the '=' token, i.e. right after 'aa+bb') and sum
    part (head value_sum at the EOS token, after the claimed sum)."""
    idx, _ = batch(list(zip(prompts, resps)))
    last = (idx != PAD).sum(1) - 1
    eq = torch.minimum(torch.full_like(last, 1 + len(prompts[0]) + 5), last)   # BOS + prompt + 'aa+bb' -> '='
    h, ar = rm.hidden(idx), torch.arange(len(prompts))
    return rm.value(h[ar, eq])[:, 0], rm.value_sum(h[ar, last])[:, 0]


def rm_score(rm, prompts, resps):
    if PARTS:                                  # log P(pair part right) + log P(sum part right)
        lp, ls = rm_parts(rm, prompts, resps)
        return {'pair': lp, 'sum': ls}.get(getattr(rm, 'only', ''), F.logsigmoid(lp) + F.logsigmoid(ls))
    idx, _ = batch(list(zip(prompts, resps)))
    last = (idx != PAD).sum(1) - 1             # the EOS token
    h = rm.hidden(idx)
    if POOL == 'mean':                         # mean of the value head over the answer tokens and EOS
        v = rm.value(h)[..., 0]
        plen = 1 + len(prompts[0])
        m = torch.zeros_like(v)
        for i, l in enumerate(last.tolist()):
            m[i, plen:l + 1] = 1
        return (v * m).sum(1) / m.sum(1)
    if POOL == 'prev':                         # the last answer token (its state predicts what follows the answer)
        last = last - 1
    return rm.value(h[torch.arange(len(prompts)), last])[:, 0]


class JudgeChecker:
    """Reference only: logit(Y) - logit(N) of the model at the last answer token (pretrained judgement)."""
    def __init__(self, m):
        self.m = m


@torch.no_grad()
def rm_scores(rm, prompts, resps, chunk=1024):
    if isinstance(rm, JudgeChecker):
        idx, _ = batch(list(zip(prompts, resps)))
        last = (idx != PAD).sum(1) - 2
        lg = rm.m(idx)[torch.arange(len(prompts)), last]
        ok = torch.tensor([float(parse(x) is not None) for x in resps])
        return (lg[:, STOI['Y']] - lg[:, STOI['N']]) * ok - 100 * (1 - ok)
    if isinstance(rm, FactChecker):
        return fact_scores(rm.m, prompts, resps)
    return torch.cat([rm_score(rm, prompts[i:i + chunk], resps[i:i + chunk]) for i in range(0, len(prompts), chunk)])


def accuracy(m, qs, temp=0.0, k=1, gen=None):
    prompts = [prompt_of(q) for q in qs for _ in range(k)]
    resps = generate(m, prompts, temp, gen)
    qq = [q for q in qs for _ in range(k)]
    return (round(sum(correct(q, r) for q, r in zip(qq, resps)) / len(resps), 4),
            round(sum(form_ok(q, r) for q, r in zip(qq, resps)) / len(resps), 4))


# ---------------------------------------------------------------- splits (disjoint by list+target)
rng = random.Random(0)
seen = set()


def draw(n):
    out = []
    while len(out) < n:
        q = make_q(rng)
        if prompt_of(q) not in seen:
            seen.add(prompt_of(q))
            out.append(q)
    return out


N_BASE = min(N_LAB, 600)
test, heldout, train, labelled = draw(300), draw(200), draw(600), draw(N_BASE + N_DEVLAB)
pre_dev = draw(100)                            # only for deciding when to stop pretraining
pre_qs = draw(30000)                           # pretraining questions, disjoint from all of the above
extra = draw(N_LAB - N_BASE)                   # N_LAB > 600: more labelled questions, after the pretraining ones
lab_rm, lab_dev = labelled[:N_BASE] + extra, labelled[N_BASE:]
train = train + draw(int(os.environ.get('RL_POOL', 600)) - 600)   # RL_POOL > 600: fresh unlabelled RL prompts, drawn last
labelled = labelled + extra                    # (appended: teacher samples of the first 680 stay the same)
FACTS = [(f'{a:02d}+{b:02d}=', f'{a + b:02d}') for a in range(1, MAXN + 1) for b in range(1, MAXN + 1)]
JUDGE = int(os.environ.get('JUDGE', 0))   # 1: pretraining also has judged statements "08+05=17" -> "N", "08+09=17" -> "Y"


def judged_task(r):
    q = r.choice(pre_qs)
    if r.random() < 0.5:
        return prompt_of(q) + answer_of(*q[2]), 'Y'
    pr = r.choice([p for p in itertools.combinations(sorted(q[0]), 2) if p != q[2]])
    return prompt_of(q) + answer_of(pr[0], pr[1], q[1] if r.random() < 0.7 else None), 'N'


def judged(r):
    a, b = r.randint(1, MAXN), r.randint(1, MAXN)
    c = a + b if r.random() < 0.5 else max(2, a + b + r.choice([-3, -2, -1, 1, 2, 3]) if r.random() < 0.7 else r.randint(2, 2 * MAXN))
    return f'{a:02d}+{b:02d}={c:02d}', 'Y' if c == a + b else 'N'

# ---------------------------------------------------------------- student pretraining (cached)
CK = f'{HERE}/ckpt'
os.makedirs(CK, exist_ok=True)


def pretrain_student():
    path = f'{CK}/student_{FORM}_j{JUDGE}_r{ROPE}_d{D}_L{L}_f{FACTS_TARGET}_t{STUDENT_TARGET}_max{PRE_MAX}.pt'
    torch.manual_seed(0)
    m = GPT(D, L)
    if os.path.exists(path):
        saved = torch.load(path)
        m.load_state_dict(saved['state'])
        log('loaded', os.path.basename(path), saved['info'])
        return m, saved['info']
    corpus = [(prompt_of(q), answer_of(*q[2])) for q in pre_qs]
    opt = torch.optim.AdamW(m.parameters(), lr=2e-3, weight_decay=0.01)
    prng, t0, info, phase, fact_steps = random.Random(2), time.process_time(), {}, 'facts', 0
    fidx, fmask = batch(FACTS)
    for step in range(1, PRE_MAX + 1):
        for g in opt.param_groups:
            g['lr'] = 2e-3 * min(1, step / 100)
        # phase 1: addition facts only (the forward knowledge); phase 2: task lines + facts, stopped early
        rows = [prng.choice(FACTS) for _ in range(64)] if phase == 'facts' else \
            prng.sample(corpus, 48) + [prng.choice(FACTS) for _ in range(16)]
        if JUDGE == 2:   # judged task answers of pretraining questions: prompt + candidate -> Y/N
            rows = rows[:32] + rows[48:] + [judged_task(prng) for _ in range(16)] if phase == 'task' else rows
        elif JUDGE:    # phase 1: 32 facts + 32 judged; phase 2: 32 task lines + 16 facts + 16 judged
            rows = rows[:32] + [judged(prng) for _ in range(32)] if phase == 'facts' else \
                rows[:32] + rows[48:] + [judged(prng) for _ in range(16)]
        loss = lm_loss(m, rows)
        opt.zero_grad(); loss.backward(); opt.step()
        if step % 250 == 0:
            acc = accuracy(m, pre_dev)[0]
            with torch.no_grad():
                fm = fmask.clone(); fm[:, -1] = 0                     # the two sum digits, not the EOS
                facts = (m(fidx[:, :-1]).argmax(-1) == fidx[:, 1:]).float().mul(fm).sum(1).eq(fm.sum(1)).float().mean().item()
                jr = random.Random(5); jrows = [judged(jr) for _ in range(400)]
                jidx, jmask = batch(jrows); jpos = jmask.argmax(1)
                jl = m(jidx[:, :-1])[torch.arange(len(jrows)), jpos]
                judge = ((jl[:, STOI['Y']] > jl[:, STOI['N']]) == torch.tensor([r == 'Y' for _, r in jrows])).float().mean().item()
            log(f'pretrain {phase} step {step} loss {loss.item():.3f} pre_dev greedy {acc} facts right {facts:.3f} judged right {judge:.3f}')
            info = dict(steps=step, fact_steps=fact_steps, cpu_s=round(time.process_time() - t0), facts=round(facts, 3), judge=round(judge, 3), pre_dev=acc)
            if phase == 'facts' and ((facts >= FACTS_TARGET and (not JUDGE or judge >= FACTS_TARGET)) or step >= PRE_MAX // 2):
                phase, fact_steps = 'task', step
            elif phase == 'task' and acc >= STUDENT_TARGET:
                break
    torch.save(dict(state=m.state_dict(), info=info), path)
    return m, info


# ---------------------------------------------------------------- scripted teacher
TEMPS = [0.3, 0.7, 1.0]
trng = random.Random(7)
tprof = {}


def teacher_sample(q, temp, r=trng):
    p = prompt_of(q)
    if p not in tprof:   # per-question: probability right, and a trap pair (the wrong pair whose sum is nearest T)
        wrong = [pr for pr in itertools.combinations(sorted(q[0]), 2) if pr != q[2]]
        trap = min(wrong, key=lambda pr: (abs(sum(pr) - q[1]), trng.random()))
        tprof[p] = (trng.uniform(0.25, 0.85), trap, wrong)
    pc, trap, wrong = tprof[p]
    pc = pc * (1.1 - 0.2 * temp)
    if r.random() < pc:
        pr = q[2]
    else:
        pr = trap if r.random() < 0.4 else r.choice(wrong)
    claimed = q[1] if r.random() < 0.7 else None          # eq form: a wrong pair mostly claims the target
    return answer_of(pr[0], pr[1], claimed)


def vote(samples):
    ans = [parse(x) for x in samples]
    ans = [a for a in ans if a is not None]
    cnt = sorted(((ans.count(a), a) for a in set(ans)), reverse=True)
    if cnt and (len(cnt) == 1 or cnt[1][0] < cnt[0][0]):
        return cnt[0][1]
    return None


tsamples = {prompt_of(q): [teacher_sample(q, t) for t in TEMPS for _ in range(4)] for q in labelled}
votes = {prompt_of(q): vote(tsamples[prompt_of(q)]) for q in labelled}
votes = {p: v for p, v in votes.items() if v is not None}
Q = {prompt_of(q): q for q in test + heldout + train + labelled}
TEACHER = dict(sample_right=round(sum(correct(Q[p], x) for p, v in tsamples.items() for x in v) / (12 * len(tsamples)), 3),
               vote_cover=round(len(votes) / len(labelled), 3),
               vote_right=round(sum(votes[p] == Q[p][2] for p in votes) / len(votes), 3))


# ---------------------------------------------------------------- SFT
def sft(model, seed, lr, epochs):
    data = []
    for q in lab_rm:
        p = prompt_of(q)
        if p in votes:
            good = []
            for x in tsamples[p]:
                if parse(x) == votes[p] and x not in good:
                    good.append(x)
            data += [(p, x) for x in good[:2]]
    r, m = random.Random(seed), copy.deepcopy(model)
    opt = torch.optim.AdamW(m.parameters(), lr=lr, weight_decay=0.0)
    for _ in range(epochs):
        r.shuffle(data)
        for i in range(0, len(data), 32):
            loss = lm_loss(m, data[i:i + 32])
            opt.zero_grad(); loss.backward(); opt.step()
    return m


def dev_agreement(m):
    qs = [q for q in lab_dev if prompt_of(q) in votes]
    resps = generate(m, [prompt_of(q) for q in qs], 0.0)
    return round(sum(parse(x) == votes[prompt_of(q)] for q, x in zip(qs, resps)) / len(qs), 4)


# ---------------------------------------------------------------- reward model from votes
def sum_part_right(resp):
    """Step-level label of the sum part: the claimed sum equals the sum of the two written numbers.  Arithmetic on
    the answer only: no gold answer, no vote, not even the target of the question is used."""
    pr = parse(resp)
    return float(pr is not None and int(resp[6:8]) == pr[0] + pr[1])


def train_rm(init, seed, ssamp, teacher=True, lr=None, epochs=None):
    """Bradley-Terry on up to 8 (vote-agreeing, disagreeing) pairs per question + pointwise BCE.  PARTS=1 (eq form):
    the pointwise BCE is per part, pair part right iff the pair equals the vote's pair, sum part right iff
    sum_part_right; the BT pairs (by the vote's pair) act on the combined score log p_pair + log p_sum."""
    lr, epochs = lr or RM_LR, epochs or RM_EPOCHS
    r, points, pairs = random.Random(seed), [], []
    for q in lab_rm:
        p = prompt_of(q)
        if p not in votes:
            continue
        items = (tsamples[p] if teacher else []) + ssamp[p]
        lab = [float(parse(x) == (votes[p] if LABEL == 'vote' else q[2])) for x in items]
        points += [(p, x, l) for x, l in zip(items, lab)]
        good = sorted({x for x, l in zip(items, lab) if l})
        bad = sorted({x for x, l in zip(items, lab) if not l})
        allp = [(g, b) for g in good for b in bad]
        pairs += [(p, g, b) for g, b in r.sample(allp, min(PAIR_CAP, len(allp)))]
    rm = copy.deepcopy(init)
    if PARTS:
        torch.manual_seed(seed)
        rm.value_sum = nn.Linear(rm.value.in_features, 1)
    opt = torch.optim.AdamW(rm.parameters(), lr=lr)
    for _ in range(epochs):
        r.shuffle(pairs); r.shuffle(points)
        nb = max(1, len(pairs) // 32)
        for i in range(nb):
            pb = pairs[i * 32:(i + 1) * 32]
            qb = points[i * len(points) // nb:(i + 1) * len(points) // nb][:64]
            sc = rm_score(rm, [x[0] for x in pb] * 2, [x[1] for x in pb] + [x[2] for x in pb])
            loss = -F.logsigmoid(sc[:len(pb)] - sc[len(pb):]).mean()
            if PARTS:
                lp, ls = rm_parts(rm, [x[0] for x in qb], [x[1] for x in qb])
                loss = loss + F.binary_cross_entropy_with_logits(lp, torch.tensor([x[2] for x in qb])) + \
                    F.binary_cross_entropy_with_logits(ls, torch.tensor([sum_part_right(x[1]) for x in qb]))
            else:
                sp = rm_score(rm, [x[0] for x in qb], [x[1] for x in qb])
                loss = loss + F.binary_cross_entropy_with_logits(sp, torch.tensor([x[2] for x in qb]))
            opt.zero_grad(); loss.backward(); opt.step()
    s = rm_scores(rm, [x[0] for x in points], [x[1] for x in points])
    label_right = sum((parse(x) == votes[p]) == correct(Q[p], x) for p, x, _ in points) / len(points)
    return rm, (s.mean().item(), s.std().item() + 1e-6), dict(pairs=len(pairs), points=len(points),
                                                               labels_right=round(label_right, 3))


class FactChecker:
    """Reference only (not a gate): score = well formed, and the model's own greedy sum of the written pair
    equals the claimed sum and the target (eq form) / the target (pair form).  Shows the forward knowledge."""
    def __init__(self, m):
        self.m = m


def fact_scores(m, prompts, resps):
    fact_q = {}
    for x in resps:
        pr = parse(x)
        if pr is not None:
            fact_q[f'{pr[0]:02d}+{pr[1]:02d}='] = None
    keys = list(fact_q)
    for k, v in zip(keys, generate(m, keys, 0.0)):
        fact_q[k] = v
    out = []
    for p, x in zip(prompts, resps):
        q, pr = Q[p], parse(x)
        ok = pr is not None and pr[0] in q[0] and pr[1] in q[0] and fact_q[f'{pr[0]:02d}+{pr[1]:02d}='] == f'{q[1]:02d}'
        if ok and FORM == 'eq':
            ok = x[6:8] == f'{q[1]:02d}'
        out.append(float(ok))
    return torch.tensor(out)


def eval_rm(rm, samples):
    """Held-out questions: pair accuracy (right above wrong, ties 0.5), split by the wrong answer's kind
    (claims the target: false fact / other), and best-of-k by RM vs random-of-k."""
    st = {'all': [0, 0], 'false_fact': [0, 0], 'other': [0, 0]}
    best = rand = 0.0
    for p, resps in samples.items():
        sc = rm_scores(rm, [p] * len(resps), resps).tolist()
        lab = [correct(Q[p], x) for x in resps]
        best += lab[max(range(len(sc)), key=sc.__getitem__)]
        rand += sum(lab) / len(lab)
        for i, j in itertools.product(range(len(resps)), repeat=2):
            if lab[i] and not lab[j]:
                c = 1.0 if sc[i] > sc[j] + 1e-6 else 0.5 if abs(sc[i] - sc[j]) <= 1e-6 else 0.0
                kind = 'false_fact' if (FORM == 'eq' and parse(resps[j]) and resps[j][6:] == f'{Q[p][1]:02d}') else 'other'
                for k in ('all', kind):
                    st[k][0] += c; st[k][1] += 1
    n = len(samples)
    return dict(pair_acc={k: (round(a / m, 3) if m else None, m) for k, (a, m) in st.items()},
                bestof=round(best / n, 3), random=round(rand / n, 3))


# ---------------------------------------------------------------- RL
RL_EVAL = int(os.environ.get('RL_EVAL', 0))   # every RL_EVAL steps: greedy test accuracy (gold, measuring only)
                                              # and greedy agreement with the dev pseudo-labels (gold-free choice)


def rl(init, seed, scheme, rm=None, norm=None, n_prompts=16, k=8):
    """scheme gold / form / rm reward prompts of the RL pool (`train`, unlabelled); vote rewards agreement with the
    teacher vote and samples only the labelled questions that have one (lab_rm)."""
    m, ref = copy.deepcopy(init), init
    opt = torch.optim.AdamW(m.parameters(), lr=RL_LR, weight_decay=0.0)
    r, gen = random.Random(1000 + seed), torch.Generator().manual_seed(1000 + seed)
    pool, trace, evals = [prompt_of(q) for q in train], [], []
    if scheme == 'vote':
        pool = [prompt_of(q) for q in lab_rm if prompt_of(q) in votes]
    for step in range(RL_STEPS):
        prompts = [p for p in r.sample(pool, n_prompts) for _ in range(k)]
        resps = generate(m, prompts, 1.0, gen)
        if scheme == 'gold':
            rew = torch.tensor([float(correct(Q[p], x)) for p, x in zip(prompts, resps)])
        elif scheme == 'form':
            rew = torch.tensor([float(form_ok(Q[p], x)) for p, x in zip(prompts, resps)])
        elif scheme == 'vote':
            rew = torch.tensor([float(parse(x) == votes[p]) for p, x in zip(prompts, resps)])
        else:
            rew = (rm_scores(rm, prompts, resps) - norm[0]) / norm[1]
        idx, mask = batch(list(zip(prompts, resps)))
        lp = seq_logprob(m, idx, mask)
        with torch.no_grad():
            kl = lp.detach() - seq_logprob(ref, idx, mask)
        tot = (rew - KL * kl).view(n_prompts, k)
        adv = (tot - tot.mean(1, keepdim=True)).view(-1)
        loss = -(adv * lp / mask.sum(1)).mean()
        opt.zero_grad(); loss.backward(); opt.step()
        if step % 50 == 0 or step == RL_STEPS - 1:
            trace.append((step, round(rew.mean().item(), 3), round(kl.mean().item(), 3),
                          round(sum(correct(Q[p], x) for p, x in zip(prompts, resps)) / len(resps), 3)))
        if RL_EVAL and (step + 1) % RL_EVAL == 0:
            evals.append((step + 1, accuracy(m, test)[0], dev_agreement(m), accuracy(m, train[:600])[0]))
    return m, trace, evals


def ci(xs):
    n, mu = len(xs), sum(xs) / len(xs)
    if n < 2:
        return round(mu, 2), None
    sd = (sum((x - mu) ** 2 for x in xs) / (n - 1)) ** 0.5
    h = {2: 12.706, 3: 4.303, 4: 3.182, 5: 2.776}[n] * sd / n ** 0.5
    return round(mu, 2), (round(mu - h, 2), round(mu + h, 2))


# ---------------------------------------------------------------- main
def main():
    global RL_LR
    stage = sys.argv[1] if len(sys.argv) > 1 else 'g2'
    seeds = [int(s) for s in (sys.argv[2] if len(sys.argv) > 2 else '0').split(',')]
    log(f'FORM={FORM} N_LAB={N_LAB} K_S={K_S} RM_EPOCHS={RM_EPOCHS} D={D} L={L}; example:', prompt_of(test[0]),
        answer_of(*test[0][2]), '| teacher', TEACHER)
    student, pinfo = pretrain_student()
    log('student params', n_params(student), 'pretraining', pinfo, 'base test greedy (acc, form)', accuracy(student, test))
    rows = []
    for seed in seeds:
        torch.manual_seed(seed)
        row = dict(seed=seed, form=FORM, n_lab=N_LAB, k_s=K_S, teacher=TEACHER, pretrain=pinfo)
        sweep = []
        for lr, ep in [(3e-4, 2), (1e-3, 2), (1e-3, 5), (3e-3, 3)]:
            sweep.append(((lr, ep), dev_agreement(sft(student, seed, lr, ep))))
        cfg = max(sweep, key=lambda x: x[1])[0]
        s_model = sft(student, seed, *cfg)
        row.update(sft_sweep=sweep, sft_cfg=cfg, base=accuracy(student, test), sft=accuracy(s_model, test))
        gs = torch.Generator().manual_seed(100 + seed)
        row['sft_T1'] = accuracy(s_model, test, 1.0, 4, gs)
        log(f'seed {seed}: SFT sweep (lr, ep) -> dev agreement with votes {sweep}; chosen {cfg}: '
            f'test greedy (acc, form) {row["sft"]}, T=1 {row["sft_T1"]}')
        if stage == 'g1':     # G1 only: RL(gold) at each RL_LRS learning rate, no RM
            row['sft_dev'] = dev_agreement(s_model)
            for lr_ in [float(x) for x in os.environ.get('RL_LRS', str(RL_LR)).split(',')]:
                RL_LR, t_rl = lr_, time.process_time()
                m, trace, evals = rl(s_model, seed, 'gold')
                row[f'rl_gold_lr{lr_}'] = dict(acc=accuracy(m, test), evals=evals, trace=trace)
                log(f'seed {seed}: RL gold ({RL_STEPS} steps, lr {lr_}): test greedy (acc, form) {accuracy(m, test)}; '
                    f'(step, reward, KL, rollout acc) {trace}; (step, test greedy, dev agreement, greedy on the first 600 RL prompts) {evals}; '
                    f'{time.process_time() - t_rl:.0f} cpu-s')
            rows.append(row)
            with open(f'{HERE}/results_{stage}_{FORM}{TAG.strip()}.jsonl', 'a') as f:
                f.write(json.dumps(row) + '\n')
            continue
        lab_prompts = [prompt_of(q) for q in lab_rm if prompt_of(q) in votes for _ in range(K_S)]
        ssamp = {}
        for p, x in zip(lab_prompts, generate(s_model, lab_prompts, 1.0, gs)):
            ssamp.setdefault(p, []).append(x)
        ho_prompts = [prompt_of(q) for q in heldout for _ in range(8)]
        hsamp = {}
        for p, x in zip(ho_prompts, generate(s_model, ho_prompts, 1.0, gs)):
            hsamp.setdefault(p, []).append(x)
        bad = [x for p, xs in hsamp.items() for x in xs if not form_ok(Q[p], x)][:8]
        log(f'seed {seed}: malformed held-out samples, e.g. {bad}')
        row['fact_checker'] = eval_rm(FactChecker(student), hsamp)
        log(f'seed {seed}: reference, no training: the base student as a fact checker {row["fact_checker"]}')
        if JUDGE:
            row['judge_checker'] = eval_rm(JudgeChecker(s_model), hsamp)
            log(f'seed {seed}: reference, no training: the SFT student own Y/N judgement {row["judge_checker"]}')
        for var in [v for v in os.environ.get('RM_VARIANTS', '').split(',') if v]:
            lr_, ep_ = float(var.split(':')[0]), int(var.split(':')[1])
            t_rm = time.process_time()
            rm_, _, rinfo = train_rm(s_model, seed, ssamp, lr=lr_, epochs=ep_)
            row[f'g2_{var}'] = eval_rm(rm_, hsamp)
            log(f'seed {seed}: RM variant lr {lr_} epochs {ep_} ({time.process_time() - t_rm:.0f} cpu-s): {row[f"g2_{var}"]}')
        t_rm = time.process_time()
        rm, norm, rinfo = train_rm(s_model, seed, ssamp)
        row['rm_train'] = rinfo
        row['g2'] = eval_rm(rm, hsamp)
        log(f'seed {seed}: RM {rinfo} ({time.process_time() - t_rm:.0f} cpu-s); held-out G2 {row["g2"]}')
        if PARTS:   # diagnostics: each head alone as the score, and the sum head as a classifier of its own label
            for part in ('pair', 'sum'):
                rm.only = part
                row[f'g2_{part}_head_only'] = eval_rm(rm, hsamp)
            rm.only = ''
            hp = [p for p, xs in hsamp.items() for _ in xs]
            hx = [x for xs in hsamp.values() for x in xs]
            with torch.no_grad():
                _, ls = rm_parts(rm, hp, hx)
            lab = torch.tensor([sum_part_right(x) for x in hx])
            row['sum_head_acc'] = (round(((ls > 0).float() == lab).float().mean().item(), 3), round(lab.mean().item(), 3))
            log(f'seed {seed}: PARTS heads alone: pair {row["g2_pair_head_only"]}; sum {row["g2_sum_head_only"]}; '
                f'sum head right on held-out samples (acc, share with a right sum) {row["sum_head_acc"]}')
        if stage == 'all':
            for scheme in os.environ.get('SCHEMES', 'gold,form,rm').split(','):
                t_rl = time.process_time()
                m, trace, evals = rl(s_model, seed, scheme, rm, norm)
                row[f'rl_{scheme}'] = accuracy(m, test)
                row[f'rl_{scheme}_evals'] = evals
                log(f'seed {seed}: RL {scheme} ({RL_STEPS} steps, lr {RL_LR}): test greedy (acc, form) '
                    f'{row[f"rl_{scheme}"]}; (step, reward, KL, rollout acc) {trace}; '
                    f'(step, test greedy, dev agreement, greedy on the first 600 RL prompts) {evals}; {time.process_time() - t_rl:.0f} cpu-s')
        rows.append(row)
        with open(f'{HERE}/results_{stage}_{FORM}{TAG.strip()}.jsonl', 'a') as f:
            f.write(json.dumps(row) + '\n')
    if stage == 'g1' and len(rows) > 1:
        for key in [k for k in rows[0] if k.startswith('rl_gold_lr')]:
            for i, (st, *_) in enumerate(rows[0][key]["evals"]):
                xs = [100 * (r[key]['evals'][i][1] - r['sft'][0]) for r in rows]
                log(f'{key} step {st} - sft: per seed {[round(x, 1) for x in xs]}; mean [95% t-CI] {ci(xs)}')
    if stage == 'all' and len(rows) > 1:
        pct = lambda r, k: 100 * r[k][0]
        for a, b in [('rl_gold', 'sft'), ('rl_form', 'sft'), ('rl_rm', 'sft'), ('rl_vote', 'sft'), ('rl_rm', 'rl_form'),
                     ('rl_rm', 'rl_vote'), ('rl_gold', 'rl_rm')]:
            if a not in rows[0] or b not in rows[0]:
                continue
            xs = [pct(r, a) - pct(r, b) for r in rows]
            log(f'{a} - {b}: per seed {[round(x, 1) for x in xs]}; mean [95% t-CI] {ci(xs)}')
    log('done')


if __name__ == '__main__':
    main()
