"""shared_work.py on a small real SAM2 memory attention (random weights): the first layer's
self-attention is computed once for the objects of a frame and the outputs stay bit-identical."""

import types

import pytest
import torch

from model.shared_work import LastResult, SharedWork

D, SIDE, KV = 32, 8, 16


def memory_attention(seed: int = 0):
    from sam2.modeling.memory_attention import MemoryAttention, MemoryAttentionLayer
    from sam2.modeling.sam.transformer import RoPEAttention

    torch.manual_seed(seed)

    def rope(**extra):
        return RoPEAttention(rope_theta=10000.0, feat_sizes=[SIDE, SIDE], embedding_dim=D,
                             num_heads=1, downsample_rate=1, dropout=0.1, **extra)

    # The SAM2.1 configs' layout (sam2.1_hiera_*.yaml), at a small width.
    layer = MemoryAttentionLayer(activation="relu", cross_attention=rope(rope_k_repeat=True,
                                                                         kv_in_dim=KV),
                                 d_model=D, dim_feedforward=64, dropout=0.1,
                                 pos_enc_at_attn=False, pos_enc_at_cross_attn_keys=True,
                                 pos_enc_at_cross_attn_queries=False, self_attention=rope())
    return MemoryAttention(d_model=D, pos_enc_at_input=True, layer=layer, num_layers=2).eval()


def frame_features():
    """A frame's cached features and position encoding (B, C, H, W), and the (HW, B, C) views
    `_prepare_backbone_features` hands each object."""
    feats, pos = torch.randn(1, D, SIDE, SIDE), torch.randn(1, D, SIDE, SIDE)
    return feats, pos


def views(feats, pos):
    return [feats.flatten(2).permute(2, 0, 1)], [pos.flatten(2).permute(2, 0, 1)]


def object_memory():
    tokens = 2 * SIDE * SIDE
    return torch.randn(tokens, 1, KV), torch.randn(tokens, 1, KV)


def call(attention, feats, pos, memory):
    curr, curr_pos = views(feats, pos)
    return attention(curr=curr, curr_pos=curr_pos, memory=memory[0], memory_pos=memory[1],
                     num_obj_ptr_tokens=0)


@pytest.fixture()
def pair():
    shared_model = types.SimpleNamespace(memory_attention=memory_attention())
    return SharedWork(shared_model), shared_model.memory_attention, memory_attention()


def test_objects_of_a_frame_share_the_first_self_attention_bit_for_bit(pair):
    shared, attention, plain = pair
    feats, pos = frame_features()
    with torch.inference_mode():
        for _ in range(3):
            memory = object_memory()
            assert torch.equal(call(attention, feats, pos, memory), call(plain, feats, pos, memory))
    # computed for the first object, reused for the other two
    assert (shared.computed, shared.hits) == (1, 2)


def test_another_frame_is_computed_afresh(pair):
    shared, attention, plain = pair
    feats, pos = frame_features()
    memory = object_memory()
    with torch.inference_mode():
        call(attention, feats, pos, memory)
        # Equal values in another tensor (another frame's features) are not taken for the same.
        copy = feats.clone()
        assert torch.equal(call(attention, copy, pos, memory), call(plain, copy, pos, memory))
        other, _ = frame_features()
        assert torch.equal(call(attention, other, pos, memory), call(plain, other, pos, memory))
    assert (shared.computed, shared.hits) == (3, 0)


def test_clear_lets_go_of_the_frame(pair):
    shared, attention, _ = pair
    feats, pos = frame_features()
    with torch.inference_mode():
        call(attention, feats, pos, object_memory())
        assert shared.attention.inputs is not None
        shared.clear()
        assert shared.attention.inputs is None and shared.attention.output is None
        call(attention, feats, pos, object_memory())
    assert shared.hits == 0


def test_a_view_elsewhere_in_the_same_storage_is_not_the_same_input():
    cache = LastResult()
    base = torch.arange(24.0)
    cache.put((base[:12],), "first half")
    assert cache.get((base[:12],)) == "first half"
    assert cache.get((base[12:],)) is None  # another offset
    assert cache.get((base[:12].view(3, 4),)) is None  # another shape
    assert cache.get((base.view(2, 12)[0],)) == "first half"  # the same view, built another way
    assert cache.get((base[:12].double(),)) is None  # another dtype
