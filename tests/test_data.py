"""Data: the synthetic corpus (determinism, resume, a real face-voice link), the oracle, the
real-dataset loaders on fake trees, and the Table 1 sampler."""
import csv
import shutil

import numpy as np
import pytest
import soundfile as sf
from PIL import Image

from core.errors import UserError
from tests.conftest import SR, speech_like
from training.data import datasets, synth
from training.data.faces import render_face, sample_nuisance
from training.data.identity import Identity, sample_identity, voice_params
from training.data.sampler import TABLE1, Table1Sampler
from training.data.sentences import sentence_pool

needs_espeak = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng is not installed")
needs_flite = pytest.mark.skipif(shutil.which("flite") is None or shutil.which("sox") is None,
                                 reason="flite/sox are not installed")


# ---------------------------------------------------------------------------------------------
# synthetic corpus

OPTS = synth.SynthOptions(speakers=9, utts=2, faces=2, seed=3)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    out = tmp_path_factory.mktemp("corpus")
    synth.synthesize_corpus(out, OPTS, workers=1, progress=False)
    return out


@needs_espeak
@needs_flite
def test_corpus_has_all_three_kinds_and_disjoint_paired_heldout_speakers(corpus):
    m = synth.load_manifest(corpus)
    kinds = {s["kind"] for s in m["speakers"] if s["split"] == "train"}
    assert kinds == {"paired", "audio", "image"}
    held_out = [s for s in m["speakers"] if s["split"] != "train"]
    assert held_out and all(s["kind"] == "paired" for s in held_out)
    assert {s["split"] for s in held_out} == {"val", "test"}
    ids = [s["speaker"] for s in m["speakers"]]
    assert len(ids) == len(set(ids))
    for s in m["speakers"]:
        has_audio = any(u["speaker"] == s["speaker"] for u in m["utterances"])
        has_faces = any(f["speaker"] == s["speaker"] for f in m["faces"])
        assert (has_audio, has_faces) == {"paired": (True, True), "audio": (True, False), "image": (False, True)}[s["kind"]]


@needs_espeak
@needs_flite
def test_corpus_files_are_24k_mono_speech_and_128px_faces(corpus):
    m = synth.load_manifest(corpus)
    for u in m["utterances"]:
        wav, rate = sf.read(corpus / u["path"])
        assert rate == SR and wav.ndim == 1 and abs(wav.size / SR - u["seconds"]) < 0.01
        assert 0.8 < u["seconds"] < 10 and u["text"].strip()
        assert np.sqrt(np.mean(wav ** 2)) > 0.01
    for f in m["faces"]:
        assert Image.open(corpus / f["path"]).size == (128, 128)
    assert (corpus / "speakers.csv").is_file()


@needs_espeak
@needs_flite
def test_corpus_is_deterministic_from_the_seed(corpus, tmp_path):
    again = tmp_path / "again"
    synth.synthesize_corpus(again, OPTS, workers=2, progress=False)  # different worker count, same bytes
    m1, m2 = synth.load_manifest(corpus), synth.load_manifest(again)
    assert m1["utterances"] == m2["utterances"] and m1["speakers"] == m2["speakers"] and m1["faces"] == m2["faces"]
    for item in m1["utterances"][:4] + m1["faces"][:4]:
        assert (corpus / item["path"]).read_bytes() == (again / item["path"]).read_bytes()
    other = synth.plan_speakers(synth.SynthOptions(speakers=9, utts=2, faces=2, seed=4))
    assert other != m1["speakers"]


@needs_espeak
@needs_flite
def test_corpus_resumes_skipping_finished_files(corpus):
    m = synth.load_manifest(corpus)
    victim = corpus / m["utterances"][0]["path"]
    keeper = corpus / m["faces"][0]["path"]
    before = keeper.stat().st_mtime_ns
    original = victim.read_bytes()
    victim.unlink()
    synth.synthesize_corpus(corpus, OPTS, workers=1, progress=False)
    assert victim.read_bytes() == original
    assert keeper.stat().st_mtime_ns == before


@needs_espeak
def test_preview_writes_a_contact_sheet(corpus, tmp_path):
    out = synth.preview(corpus, tmp_path / "sheet.png")
    img = Image.open(out)
    assert img.width > 150 and img.height >= 96


def test_data_workers_never_fork_the_calling_process():
    """The caller may hold threads (the training tab, TensorBoard, pytest-timeout); a plain fork copies
    their held locks into a child that then waits forever, which once hung CI for 35 minutes."""
    from training import processes

    assert processes.context().get_start_method() in ("forkserver", "spawn")


def test_sentence_pool_is_large_and_distinct():
    pool = sentence_pool(600, seed=0)
    assert len(set(pool)) == 600 and pool == sentence_pool(600, seed=0)


def identity(**kw) -> Identity:
    base = sample_identity(np.random.default_rng(0), "t")
    for k, v in {"pitch_jitter": 0.0, "tract_jitter": 0.0, "rate_jitter": 0.0, "accent": "en-us", "engine": "espeak",
                 **kw}.items():
        setattr(base, k, v)
    return base


@needs_espeak
def test_voice_carries_the_identity(tmp_path):
    """The face-voice link is real: gender/build/energy move F0, formants and rate measurably."""
    import librosa

    from training.data.voices import Espeak, synthesize

    esp = Espeak.get(tmp_path / "esp")
    text = "We were away a year ago when you knew where I was going."

    def measure(**kw):
        idt = identity(**kw)
        wav = synthesize(esp, text, idt, voice_params(idt))
        f0 = float(np.median(librosa.yin(wav, fmin=60, fmax=500, sr=SR)))
        centroid = float(librosa.feature.spectral_centroid(y=wav, sr=SR).mean())
        return f0, centroid, wav.size / SR

    common = dict(age="adult", build="average", energy="calm")
    f_female, _, _ = measure(gender="female", **common)
    f_male, _, _ = measure(gender="male", **common)
    assert f_female > 1.5 * f_male
    _, c_slim, _ = measure(gender="male", age="adult", build="slim", energy="calm")
    _, c_large, _ = measure(gender="male", age="adult", build="large", energy="calm")
    assert c_slim > 1.1 * c_large  # shorter vocal tract -> higher formants
    _, _, d_calm = measure(gender="male", age="adult", build="average", energy="calm")
    _, _, d_lively = measure(gender="male", age="adult", build="average", energy="lively")
    assert d_lively < 0.85 * d_calm  # lively speakers talk faster


@needs_flite
def test_flite_voices_follow_the_identity_too():
    import librosa

    from training.data.voices import synth_flite

    text = "Please bring three red baskets to the station."
    lo, hi = identity(gender="male", age="adult", build="large", energy="calm"), identity(
        gender="male", age="young", build="slim", energy="calm")
    f_lo = np.median(librosa.yin(synth_flite(text, lo, voice_params(lo)), fmin=60, fmax=500, sr=SR))
    f_hi = np.median(librosa.yin(synth_flite(text, hi, voice_params(hi)), fmin=60, fmax=500, sr=SR))
    assert f_hi > 1.15 * f_lo


def test_faces_are_deterministic_and_nuisance_varies_them():
    idt = identity(gender="female", age="senior", build="large", energy="lively")
    n1, n2 = sample_nuisance(np.random.default_rng(1)), sample_nuisance(np.random.default_rng(2))
    a, b = np.asarray(render_face(idt, n1)), np.asarray(render_face(idt, n1))
    assert a.shape == (128, 128, 3) and np.array_equal(a, b)
    assert not np.array_equal(a, np.asarray(render_face(idt, n2)))


# ---------------------------------------------------------------------------------------------
# oracle


def test_oracle_ground_truth_comes_from_the_manifest():
    from training.oracle import ground_truth

    manifest = {"speakers": [{"speaker": "s1", "gender": "male", "age": "senior", "build": "slim", "energy": "calm",
                              "accent": "en"}]}
    assert ground_truth(manifest) == {"s1": {"gender": "male", "age": "senior", "build": "slim", "energy": "calm"}}


def test_shipped_oracle_reads_held_out_renders():
    """>= 95 % per attribute on identities from a seed stream used neither in training nor its test."""
    from training.oracle import DEFAULT_ORACLE, accuracy, load_oracle, render_set

    if not DEFAULT_ORACLE.is_file():
        pytest.skip("no shipped oracle")
    images, labels = render_set(150, 2, seed_stream=7777, workers=1, progress=False)
    acc = accuracy(load_oracle(), images, labels)
    assert min(acc.values()) >= 0.95, acc


def test_oracle_training_runs_end_to_end(tmp_path):
    from training.oracle import load_oracle, predict, train_oracle

    acc = train_oracle(tmp_path / "o.safetensors", train_identities=16, per_identity=2, test_identities=4, epochs=1,
                       batch=8, workers=1, progress=False)
    assert set(acc) == {"gender", "age", "build", "energy"}
    model = load_oracle(tmp_path / "o.safetensors")
    preds = predict(model, [Image.new("RGB", (64, 64))])
    assert set(preds[0]) == set(acc)


# ---------------------------------------------------------------------------------------------
# real-dataset loaders on fake trees


def img(path, colour=(120, 80, 60), size=(64, 64)):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, colour).save(path)


def wav(path, seconds=1.0, f0=150):
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, speech_like(seconds, f0=f0), SR)


def test_celeba_hq_layout(tmp_path):
    for split in ("train", "val"):
        for g in ("female", "male"):
            for k in range(2):
                img(tmp_path / split / g / f"{k}.jpg")
    (tmp_path / "train" / "male" / "broken.jpg").write_bytes(b"not a jpeg")
    ds = datasets.load_celeba_hq(tmp_path)
    assert len(ds.speakers) == 4 and all(s.kind == "image" and not s.identity for s in ds.speakers)
    assert {(s.split, s.gender, len(s.faces)) for s in ds.speakers} == {
        ("train", "female", 2), ("train", "male", 2), ("val", "female", 2), ("val", "male", 2)}
    assert len(ds.skipped) == 1 and "broken.jpg" in ds.skipped[0][0]
    ds.validate()


def test_vctk_layout(tmp_path):
    (tmp_path / "speaker-info.txt").write_text("ID  AGE  GENDER  ACCENTS  REGION\np225  23  F  English  Southern\n"
                                               "p226  22  M  English  Surrey\n")
    for spk in ("p225", "p226"):
        for k in (1, 2):
            wav(tmp_path / "wav48_silence_trimmed" / spk / f"{spk}_{k:03d}_mic1.flac")
            wav(tmp_path / "wav48_silence_trimmed" / spk / f"{spk}_{k:03d}_mic2.flac")
            (tmp_path / "txt" / spk).mkdir(parents=True, exist_ok=True)
            (tmp_path / "txt" / spk / f"{spk}_{k:03d}.txt").write_text(f"sentence {k}\n")
    (tmp_path / "wav48_silence_trimmed" / "p226" / "p226_003_mic1.flac").write_text("garbage")
    ds = datasets.load_vctk(tmp_path)
    by_id = {s.id: s for s in ds.speakers}
    assert by_id["p225"].gender == "female" and by_id["p226"].gender == "male"
    assert [p.name for p in by_id["p225"].voices] == ["p225_001_mic1.flac", "p225_002_mic1.flac"]
    assert by_id["p225"].texts == ["sentence 1", "sentence 2"] and by_id["p225"].kind == "audio"
    assert len(ds.skipped) == 1
    ds.validate()


def write_video(path, frames=10, seconds=1.0):
    import av

    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as c:
        v = c.add_stream("mpeg4", rate=10)
        v.width = v.height = 96
        v.pix_fmt = "yuv420p"
        a = c.add_stream("aac", rate=SR)
        a.layout = "mono"
        for i in range(frames):
            frame = av.VideoFrame.from_ndarray(np.full((96, 96, 3), 20 * i, np.uint8), format="rgb24")
            for p in v.encode(frame):
                c.mux(p)
        for p in v.encode():
            c.mux(p)
        samples = speech_like(seconds)
        for k in range(0, samples.size, 1024):
            frame = av.AudioFrame.from_ndarray(samples[None, k:k + 1024], format="fltp", layout="mono")
            frame.sample_rate, frame.pts = SR, k
            for p in a.encode(frame):
                c.mux(p)
        for p in a.encode():
            c.mux(p)


def test_audiovisual_preparation_and_loader(tmp_path):
    from training.data.audiovisual import prepare_audiovisual

    root, cache = tmp_path / "grid", tmp_path / "cache"
    for spk, f0 in (("s1", 120), ("s2", 210)):
        for k in range(4):  # a clip as frames + wav (the ffmpeg-free path)
            img(root / spk / "clip1" / f"{k:03d}.png", colour=(40 * k, 90, 60))
        wav(root / spk / "clip1" / "audio.wav", 1.2, f0)
    write_video(root / "s1" / "clip2.mp4")
    (root / "s2" / "broken.mp4").write_bytes(b"\x00" * 100)
    with open(root / "genders.csv", "w", newline="") as f:
        csv.writer(f).writerows([("s1", "male"), ("s2", "female")])
    index = prepare_audiovisual(root, cache, frames_per_clip=2, progress=False)
    assert len(index["skipped"]) == 1 and "broken.mp4" in index["skipped"][0][0]
    ds = datasets.load_prepared_av(cache)
    by_id = {s.id: s for s in ds.speakers}
    assert by_id["s1"].kind == "paired" and len(by_id["s1"].faces) == 4 and len(by_id["s1"].voices) == 2
    assert by_id["s2"].gender == "female" and len(by_id["s2"].faces) == 2
    assert Image.open(by_id["s1"].faces[0]).size == (128, 128)
    clip, rate = sf.read(by_id["s1"].voices[1])  # the mp4's own audio track
    assert rate == SR and abs(clip.size / SR - 1.0) < 0.1
    mtime = (cache / "s1" / "audio" / "clip1.flac").stat().st_mtime_ns
    prepare_audiovisual(root, cache, frames_per_clip=2, progress=False)  # resume: nothing redone
    assert (cache / "s1" / "audio" / "clip1.flac").stat().st_mtime_ns == mtime
    ds.validate()


def test_avatar_set_with_and_without_gender_folders(tmp_path):
    for g in ("female", "male"):
        for k in range(3):
            img(tmp_path / "avatars" / g / f"{k}.png")
    wav(tmp_path / "voices" / "female" / "a.wav")
    wav(tmp_path / "voices" / "male" / "b.wav")
    ds = datasets.load_avatar_set(tmp_path / "avatars", tmp_path / "voices")
    assert {(s.gender, s.kind, len(s.faces), len(s.voices)) for s in ds.speakers} == {
        ("female", "paired", 3, 1), ("male", "paired", 3, 1)}
    ds.validate()
    for k in range(2):
        img(tmp_path / "flat" / f"{k}.png")
    flat = datasets.load_avatar_set(tmp_path / "flat")
    assert flat.speakers[0].gender is None
    with pytest.raises(UserError, match="gender .* unknown"):
        flat.validate()
    flat.validate(need_both_genders=False)


def test_empty_folder_and_one_gender_are_clear_errors(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="no usable"):
        datasets.load_avatar_set(tmp_path / "empty").validate()
    for k in range(2):
        img(tmp_path / "one" / "female" / f"{k}.png")
    with pytest.raises(UserError, match="only female"):
        datasets.load_avatar_set(tmp_path / "one").validate()
    (tmp_path / "bad" / "male").mkdir(parents=True)
    (tmp_path / "bad" / "male" / "x.png").write_text("nope")
    ds = datasets.load_avatar_set(tmp_path / "bad")
    assert len(ds.skipped) == 1
    with pytest.raises(UserError, match="1 files could not be read"):
        ds.validate()
    with pytest.raises(UserError, match="not found"):
        datasets.load_vctk(tmp_path / "nowhere")


# ---------------------------------------------------------------------------------------------
# Table 1 sampler


def toy_dataset():
    S = datasets.Speaker
    speakers = []
    for i in range(6):
        speakers.append(S(f"p{i}", "female" if i % 2 else "male", "paired", faces=["f"] * 3, voices=["v"] * 3))
    for i in range(4):
        speakers.append(S(f"a{i}", "female" if i % 2 else "male", "audio", voices=["v"] * 2))
    for i in range(4):
        speakers.append(S(f"i{i}", "female" if i % 2 else "male", "image", faces=["f"] * 2))
    return datasets.Dataset("toy", speakers)


def test_table1_switches_references_heads_and_infonce():
    data = toy_dataset()
    domains = [s.id for s in data.speakers if s.voices]  # speaker domains: training speakers with real voices
    sampler = Table1Sampler(data, batch_size=4, speaker_domains=domains, seed=0)
    seen = {k: {"refs": set(), "domain_types": set(), "infonce": set()} for k in TABLE1}
    for step in range(400):
        plan = sampler.plan(step)
        kinds = {data.speakers[t].kind for t in plan.target_speakers}
        assert kinds == {plan.kind}
        assert len(set(plan.target_speakers)) == 4  # N distinct speakers for the InfoNCE negatives
        s = seen[plan.kind]
        s["refs"] |= {plan.image_reference, plan.audio_reference}
        s["domain_types"].add(plan.domain_type)
        s["infonce"].add(plan.use_infonce)
        if plan.domain_type == "speaker":
            assert plan.target_domains == [2 + domains.index(data.speakers[t].id) for t in plan.target_speakers]
        else:
            assert plan.target_domains == plan.target_genders
        assert len(plan.source_faces) == len(plan.source_voices) == 4
        assert all(data.speakers[s_].faces for s_, _ in plan.source_faces)
        assert all(data.speakers[s_].voices for s_, _ in plan.source_voices)
        if plan.kind == "image":
            assert plan.ref_voices == [] and len(plan.ref_faces) == 4
        if plan.kind == "audio":
            assert plan.ref_faces == [] and len(plan.ref_voices) == 4
    assert seen["paired"] == {"refs": {"image", "audio", "latent"}, "domain_types": {"gender", "speaker"}, "infonce": {True}}
    assert seen["audio"] == {"refs": {"audio", "latent"}, "domain_types": {"gender", "speaker"}, "infonce": {False}}
    assert seen["image"] == {"refs": {"image", "latent"}, "domain_types": {"gender"}, "infonce": {False}}


def test_sampler_is_a_pure_function_of_seed_step_and_rank():
    data = toy_dataset()
    domains = [s.id for s in data.speakers if s.voices]
    a = Table1Sampler(data, 4, domains, seed=1)
    b = Table1Sampler(data, 4, domains, seed=1)
    assert [a.plan(s) for s in range(20)] == [b.plan(s) for s in range(20)]
    r0 = Table1Sampler(data, 4, domains, seed=1, rank=0, world_size=2)
    r1 = Table1Sampler(data, 4, domains, seed=1, rank=1, world_size=2)
    assert sum(r0.plan(s) != r1.plan(s) for s in range(20)) >= 18


def test_speaker_heads_only_for_speakers_with_domains():
    data = toy_dataset()
    sampler = Table1Sampler(data, 4, speaker_domains=[], seed=0)  # e.g. held-out speakers
    assert all(sampler.plan(s).domain_type == "gender" for s in range(100))


def test_infonce_needs_real_identities():
    S = datasets.Speaker
    pools = [S("f", "female", "paired", faces=["x"], voices=["y"], identity=False),
             S("m", "male", "paired", faces=["x"], voices=["y"], identity=False)]
    plan = Table1Sampler(datasets.Dataset("pools", pools), 2, [], seed=0).plan(0)
    assert not plan.use_infonce


def test_sampler_rejects_data_without_both_modalities():
    S = datasets.Speaker
    only_faces = datasets.Dataset("faces", [S("a", "female", "image", faces=["x"]), S("b", "male", "image", faces=["x"])])
    with pytest.raises(UserError, match="both faces and voices"):
        Table1Sampler(only_faces, 2, [], seed=0)
