"""The image pre-training stage: the rendered-pair bank and G_I + E_I training on it."""
import torch

from core import checkpoint
from core.config import preset
from training.data.face_bank import FaceBank
from training.pretrain_image import pretrain_image


def small_bank(tmp_path, **kw) -> FaceBank:
    return FaceBank.load_or_render(tmp_path / "bank.safetensors", 64, **{"groups": 2, "identities": 3, "poses": 2,
                                                                         "workers": 1, **kw})


def test_bank_targets_show_the_reference_identity_in_the_source_pose(tmp_path):
    bank = small_bank(tmp_path)
    assert bank.faces.shape == (2, 3, 2, 64, 64, 3) and bank.faces.dtype == torch.uint8
    assert torch.equal(small_bank(tmp_path).faces, bank.faces)  # cached
    assert small_bank(tmp_path, poses=3).faces.shape[2] == 3  # other settings: rendered again
    bank = small_bank(tmp_path)
    renders = bank.faces[0].permute(0, 1, 4, 2, 3).float() / 127.5 - 1  # held-out group: (identity, pose, 3, H, W)

    def where(image):
        hits = [(i, p) for i in range(3) for p in range(2) if torch.equal(renders[i, p], image)]
        assert len(hits) == 1
        return hits[0]

    x, r, gender, t = bank.batch(24, torch.Generator().manual_seed(0), "val")
    for source, reference, g, target in zip(x, r, gender, t):
        (_, pose), (who, _) = where(source), where(reference)
        assert torch.equal(target, renders[who, pose]) and g == bank.genders[0, who]
    x, _, _, _ = bank.batch(64, torch.Generator().manual_seed(0), "train")
    assert not any(torch.equal(v, face) for v in x for face in renders.flatten(0, 1))  # training never sees group 0


def test_pretraining_lowers_the_pair_error_and_resumes_as_if_unbroken(tmp_path):
    bank, cfg = small_bank(tmp_path, identities=4), preset("tiny")
    run = dict(bank=bank, batch_size=4, checkpoint_every=100, progress=False)
    stopped = pretrain_image(cfg, tmp_path / "a.safetensors", 40, should_stop=lambda step: step == 10, **run)
    assert stopped["steps"] == 10  # a stop (the user's cancel) writes its checkpoint, then returns
    resumed = pretrain_image(cfg, tmp_path / "a.safetensors", 40, resume=True, **run)
    assert resumed["val_pair_l1"] < stopped["val_pair_l1"]
    pretrain_image(cfg, tmp_path / "b.safetensors", 40, **run)
    nets, saved_cfg, meta, _ = checkpoint.load_model(tmp_path / "a.safetensors")
    assert sorted(nets) == ["generator_image", "style_encoder_image"] and saved_cfg == cfg
    assert meta["image_pretraining"]["steps"] == 40
    unbroken, _ = checkpoint.load_tensors(tmp_path / "b.safetensors")
    for key, value in checkpoint.load_tensors(tmp_path / "a.safetensors")[0].items():
        torch.testing.assert_close(value, unbroken[key])
    assert (tmp_path / "a.png").is_file()


def test_polishing_a_model_trains_its_generator_alone_and_keeps_the_rest(tmp_path, tiny_checkpoint):
    """--init MODEL --freeze-encoder: G_I learns the pairs with MODEL's E_I as it is; OUT is MODEL
    with G_I replaced, every other tensor and the header's config untouched."""
    bank = small_bank(tmp_path, identities=4)
    out = tmp_path / "polished.safetensors"
    run = dict(bank=bank, batch_size=4, checkpoint_every=100, progress=False, init=tiny_checkpoint, freeze_encoder=True)
    first = pretrain_image(None, out, 5, **run)
    result = pretrain_image(None, out, 40, resume=True, **run)
    assert result["steps"] == 40 and result["val_pair_l1"] < first["val_pair_l1"]
    before, header = checkpoint.load_tensors(tiny_checkpoint)
    after, new_header = checkpoint.load_tensors(out)
    assert after.keys() == before.keys() and new_header["config"] == header["config"]
    changed = {k.split(".", 1)[0] for k in before if not torch.equal(before[k], after[k])}
    assert changed == {"generator_image"}
    assert new_header["meta"]["image_polish"]["trained"] == ["generator_image"]
    assert new_header["meta"]["description"].endswith("then G_I polished 40 steps on rendered pairs")
    nets, _, _, _ = checkpoint.load_model(out)  # loads as a model, the whole of it
    assert "generator_audio" in nets and "style_encoder_image" in nets


def test_adversarial_polish_checkpoints_its_discriminator_and_resumes_as_if_unbroken(tmp_path, tiny_checkpoint):
    """--adversarial (with --detail): the PatchGAN and its optimiser live in the training state, so
    a stopped polish resumes to the same weights as an unbroken one; the output records the weights."""
    bank = small_bank(tmp_path, identities=4)
    run = dict(bank=bank, batch_size=4, checkpoint_every=100, progress=False, init=tiny_checkpoint,
               freeze_encoder=True, adversarial=0.05, detail=1.0)
    stopped = pretrain_image(None, tmp_path / "a.safetensors", 12, should_stop=lambda step: step == 5, **run)
    assert stopped["steps"] == 5
    state, _ = checkpoint.load_tensors(tmp_path / "a.safetensors.train.safetensors")
    assert any(k.startswith("patch_discriminator.") for k in state)
    assert any(k.startswith("optim.patch_discriminator.") for k in state)
    pretrain_image(None, tmp_path / "a.safetensors", 12, resume=True, **run)
    result = pretrain_image(None, tmp_path / "b.safetensors", 12, **run)
    assert 0 < result["sharpness"] and 0 < result["colour_detail"] and result["val_pair_l1"] > 0
    resumed, header = checkpoint.load_tensors(tmp_path / "a.safetensors")
    unbroken, _ = checkpoint.load_tensors(tmp_path / "b.safetensors")
    for key, value in unbroken.items():
        torch.testing.assert_close(resumed[key], value)
    assert header["meta"]["image_polish_adversarial_detail"]["adversarial"] == 0.05
    assert header["meta"]["description"].endswith("with a PatchGAN (weight 0.05) and a Laplacian L1 (weight 1)")
    plain, _ = checkpoint.load_tensors(tiny_checkpoint)
    assert not torch.equal(plain["generator_image.to_rgb.2.weight"], unbroken["generator_image.to_rgb.2.weight"])


def test_fine_detail_reads_blur_and_coloured_specks():
    from training.image_detail import detail_ratios

    torch.manual_seed(0)
    grey = (torch.rand(2, 1, 32, 32) * 2 - 1).expand(-1, 3, -1, -1)
    blurred = torch.nn.functional.avg_pool2d(grey, 3, 1, 1)
    specks = grey + 0.3 * torch.randn(2, 3, 32, 32)
    soft = detail_ratios(blurred, specks)
    assert soft["sharpness"] < 0.5 and soft["colour_detail"] == 0
    speckled = detail_ratios(specks, blurred + 0.01 * torch.randn(2, 3, 32, 32))
    assert speckled["sharpness"] > 2 and speckled["colour_detail"] > 10
