"""Each term of the XFaVoT objective: known values and the properties that make it right."""
import math

import pytest
import torch

from training import losses


def test_adversarial_matches_softplus_forms():
    logits = torch.tensor([2.0, -1.0, 0.0])
    assert losses.adversarial(logits, True).item() == pytest.approx(torch.nn.functional.softplus(-logits).mean().item())
    assert losses.adversarial(logits, False).item() == pytest.approx(torch.nn.functional.softplus(logits).mean().item())
    assert losses.adversarial(torch.tensor([0.0]), True).item() == pytest.approx(math.log(2))


def test_r1_of_a_linear_discriminator_is_half_its_squared_weight_norm():
    w = torch.tensor([3.0, 4.0])
    x = torch.randn(5, 2, requires_grad=True)
    assert losses.r1_penalty(x @ w, x).item() == pytest.approx(0.5 * 25.0)


def test_style_and_cycle_terms_are_mean_absolute_errors():
    a, b = torch.zeros(2, 4), torch.full((2, 4), 0.5)
    assert losses.style_reconstruction(a, b).item() == pytest.approx(0.5)
    assert losses.cycle_consistency(b, a).item() == pytest.approx(0.5)
    assert losses.style_reconstruction(b, b).item() == 0


def test_diversity_grows_with_the_difference_and_decays_with_steps():
    x = torch.zeros(2, 3, 4, 4)
    assert losses.diversity(x, x).item() == 0
    assert losses.diversity(x, x + 1).item() > losses.diversity(x, x + 0.1).item()
    assert losses.diversity_weight(0, 1.0, 100) == 1.0
    assert losses.diversity_weight(50, 1.0, 100) == pytest.approx(0.5)
    assert losses.diversity_weight(150, 1.0, 100) == 0.0


def test_diversity_is_maximised_by_the_generator_objective():
    """Sign: a gradient step on (-lambda_ds * diversity) pushes two outputs apart."""
    a = torch.zeros(4, requires_grad=True)
    b = torch.full((4,), 0.1)
    (-1.0 * losses.diversity(a, b)).backward()
    stepped = a.detach() - 0.1 * a.grad
    assert torch.all((stepped - b).abs() > (a.detach() - b).abs())


def test_f0_consistency_ignores_register_but_not_contour():
    contour = torch.linspace(100, 140, 50)[None]
    assert losses.f0_consistency(contour * 1.8, contour).item() == pytest.approx(0.0, abs=1e-6)
    assert losses.f0_consistency(contour.flip(-1), contour).item() > 0.05


def test_norm_consistency_has_a_dead_zone_of_bias():
    mel = torch.zeros(2, 1, 80, 10)
    shift = 0.3 / 4  # 0.3 log units of amplitude in normalised mel units
    assert losses.norm_consistency(mel + shift, mel, bias=0.5).item() == 0
    assert losses.norm_consistency(mel + 1.0, mel, bias=0.5).item() > 0


def test_speech_consistency_zero_only_for_equal_content():
    c = torch.randn(2, 8, 20)
    assert losses.speech_consistency(c, c).item() == 0
    assert losses.speech_consistency(c + 1, c).item() > 0


def test_source_classification_and_empty_batches():
    logits = torch.tensor([[5.0, -5.0], [-5.0, 5.0]])
    assert losses.source_classification(logits, torch.tensor([0, 1])).item() < 0.01
    assert losses.source_classification(logits, torch.tensor([1, 0])).item() > 5
    assert losses.source_classification(torch.zeros(0, 2), torch.zeros(0, dtype=torch.long)).item() == 0


def test_infonce_prefers_matched_pairs():
    torch.manual_seed(0)
    faces = torch.randn(8, 64)
    voices = faces + 0.1 * torch.randn(8, 64)
    matched = losses.infonce(faces, voices, 0.1).item()
    shuffled = losses.infonce(faces, voices[torch.randperm(8)], 0.1).item()
    assert matched < 0.1 < shuffled
    # chance level for unrelated styles is about log N
    assert losses.infonce(torch.randn(8, 64), torch.randn(8, 64), 1.0).item() == pytest.approx(math.log(8), abs=0.3)


def test_consistency_regularization():
    x = torch.randn(6)
    assert losses.consistency_regularization(x, x).item() == 0
    assert losses.consistency_regularization(x, x + 2).item() == pytest.approx(4.0)


def test_ema_decay_warms_up_to_the_configured_beta():
    from training.state import ema_decay

    assert ema_decay(0, 0.999) == pytest.approx(0.1)
    assert ema_decay(90, 0.999) == pytest.approx(0.91)
    assert ema_decay(100_000, 0.999) == 0.999
    assert all(ema_decay(t, 0.999) <= ema_decay(t + 1, 0.999) for t in range(2000))


def test_warmups_anneal_to_their_floor_and_keep_pair_targets_coming():
    from training.config import train_preset
    from training.objective import pair_weight, ramp_down

    assert [ramp_down(s, 2.0, 100) for s in (0, 50, 100, 500)] == [2.0, 1.0, 0.0, 0.0]
    assert [ramp_down(s, 2.0, 100, floor=0.25) for s in (0, 50, 100, 500)] == [2.0, 1.0, 0.5, 0.5]
    assert ramp_down(0, 2.0, 0, floor=0.25) == 0.5
    plain = train_preset("cpu", steps=1000, warmup_fraction=0.5)
    floored = train_preset("cpu", steps=1000, warmup_fraction=0.5, pair_floor=0.25)
    assert pair_weight(plain, 499) > 0 and pair_weight(plain, 500) == 0  # pair targets for the first 500 steps
    assert pair_weight(floored, 999) == 0.25 * floored.lambda_pair  # and for every step with a floor


def test_image_gan_waits_for_gan_start_then_ramps_in():
    from training.config import TrainConfig
    from training.objective import image_gan_weight

    late = TrainConfig(gan_start=100, gan_rampup=50)
    assert [image_gan_weight(late, s) for s in (0, 99, 100, 125, 150, 1000)] == [0.0, 0.0, 0.0, 0.5, 1.0, 1.0]
    assert [image_gan_weight(TrainConfig(gan_start=100), s) for s in (99, 100)] == [0.0, 1.0]  # no ramp: a switch
    assert image_gan_weight(TrainConfig(), 0) == 1.0  # the paper's objective: on from the start


def test_pair_term_trains_the_reference_encoder_only_when_asked():
    from types import SimpleNamespace

    from core.config import preset
    from core.model import build_networks
    from training.config import train_preset
    from training.objective import _g_image

    torch.manual_seed(0)
    nets = build_networks(preset("tiny"))
    b = {"x_img": torch.rand(2, 3, 64, 64) * 2 - 1, "g_img_src": torch.tensor([0, 1]), "g_trg": torch.tensor([1, 0]),
         "ref_img": torch.rand(2, 3, 64, 64) * 2 - 1, "ref_img2": torch.rand(2, 3, 64, 64) * 2 - 1,
         "pair_img": torch.zeros(2, 3, 64, 64), "pair_mask": torch.tensor([True, False])}
    plan = SimpleNamespace(image_reference="image")
    grads = {}
    for live in (False, True):  # every other term off: only the pair term reaches E_I
        cfg = train_preset("tiny", lambda_adv=0, lambda_sty=0, lambda_cyc=0, lambda_rec=0, lambda_ds=0, pair_floor=1.0,
                           pair_trains_encoders=live)
        nets.zero_grad(set_to_none=True)
        loss, logs = _g_image(nets, cfg, plan, b, 1, lambda x: x)
        loss.backward()
        encoder = [p.grad for p in nets["style_encoder_image"].parameters() if p.grad is not None]
        grads[live] = sum(float(g.abs().sum()) for g in encoder)
        assert float(logs["G/img_pair"]) > 0
    assert grads[False] == 0 and grads[True] > 0


def test_style_magnitude_match_sees_the_scale_that_infonce_cannot_and_moves_only_the_voice_styles():
    from training.losses import infonce, style_magnitude_match

    torch.manual_seed(0)
    face = torch.randn(4, 8, requires_grad=True)
    torch.testing.assert_close(infonce(face, 3 * face.detach()), infonce(face, face.detach()))  # blind to scale
    assert style_magnitude_match(face.detach(), face) == 0
    voice = (3 * face.detach()).requires_grad_()
    loss = style_magnitude_match(voice, face)
    assert loss > 1.0
    loss.backward()
    assert face.grad is None and voice.grad.abs().sum() > 0  # the face styles are the anchor


def test_style_statistics_match_sees_a_collapsed_or_shifted_set_per_gender_and_moves_only_the_styles():
    from training.losses import style_statistics_match

    torch.manual_seed(0)
    faces = torch.randn(8, 6, requires_grad=True)
    face_genders = torch.tensor([0, 1] * 4)
    assert style_statistics_match(faces.detach(), face_genders, faces, face_genders) == 0  # the same set
    assert style_statistics_match(faces.detach().flip(0), face_genders.flip(0), faces, face_genders) < 1e-6  # any order
    centre = faces.detach()[face_genders == 0].mean(0)
    collapsed = (centre + 0.01 * torch.randn(4, 6)).requires_grad_()
    loss = style_statistics_match(collapsed, torch.zeros(4, dtype=torch.long), faces, face_genders)
    assert loss > 0.1  # about the same mean, almost no spread
    loss.backward()
    assert faces.grad is None and collapsed.grad.abs().sum() > 0  # the face styles are the anchor
    swapped = style_statistics_match(faces.detach(), 1 - face_genders, faces, face_genders)
    assert swapped > 0.1  # each gender is compared with its own faces
    lone = style_statistics_match(torch.randn(1, 6), torch.tensor([0]), faces, face_genders)
    assert lone == 0  # a single row has no spread to compare: skipped


def test_style_statistics_term_trains_the_mapping_network_and_on_audio_only_steps_the_voice_encoder():
    from types import SimpleNamespace

    from core.config import preset
    from core.model import build_networks
    from training.config import train_preset
    from training.objective import _style_statistics

    torch.manual_seed(0)
    nets = build_networks(preset("tiny"))
    b = {"x_img": torch.rand(4, 3, 64, 64) * 2 - 1, "g_img_src": torch.tensor([0, 1, 0, 1]),
         "g_trg": torch.tensor([0, 1, 0, 1]), "ref_mel": torch.randn(4, 1, 80, 96),
         "z": torch.randn(4, 16), "z2": torch.randn(4, 16)}
    assert train_preset("tiny").lambda_style_stats == 0  # off unless a recipe asks for it
    for kind, voice_term in (("paired", False), ("audio", True)):
        nets.zero_grad(set_to_none=True)
        loss, logs = _style_statistics(nets, SimpleNamespace(kind=kind), b)
        loss.backward()
        trained = {name for name in ("mapping", "style_encoder_audio", "style_encoder_image")
                   if any(p.grad is not None and p.grad.abs().sum() > 0 for p in nets[name].parameters())}
        assert float(logs["G/latent_stats"]) > 0
        assert ("G/voice_stats" in logs) == voice_term
        assert trained == ({"mapping", "style_encoder_audio"} if voice_term else {"mapping"})
