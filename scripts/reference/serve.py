"""The reference study's stack served the obvious way, for scripts/bench-vs-reference.sh.

grpcio serving handmatch.v1.HandMatch's Identify and GetInfo (so the same load generator,
`handmatch-eval load`, drives it and handmatch), PIL decoding, the study's evaluation
transform (short side to 256, centre crop 224, ImageNet normalisation), PyTorch eager
DINOv2 ViT-B/14 (random weights: the real FLOPs) → 768→512→256 head → L2, and a numpy
top-k over a gallery of random unit templates. Development only: never used by the service.

python serve.py --port P --gen DIR [--gallery N] [--threads T]
"""
import argparse
import io
import sys
import time
from concurrent import futures

import grpc
import numpy as np
import torch
from PIL import Image
from transformers import Dinov2Config, Dinov2Model

MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)


def study_transform(data: bytes) -> torch.Tensor:
    img = Image.open(io.BytesIO(data)).convert("RGB")
    w, h = img.size
    if w <= h:
        size = (256, int(256 * h / w))
    else:
        size = (int(256 * w / h), 256)
    img = img.resize(size, Image.BILINEAR)
    left, top = (size[0] - 224) // 2, (size[1] - 224) // 2
    img = img.crop((left, top, left + 224, top + 224))
    x = (np.asarray(img, dtype=np.float32) / 255.0 - MEAN) / STD
    return torch.from_numpy(x.transpose(2, 0, 1).copy())


class Embedder(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.backbone = Dinov2Model(Dinov2Config(hidden_size=768, num_hidden_layers=12,
                                                 num_attention_heads=12, patch_size=14,
                                                 image_size=518))
        self.head = torch.nn.Sequential(torch.nn.Linear(768, 512), torch.nn.BatchNorm1d(512),
                                        torch.nn.ReLU(), torch.nn.Linear(512, 256))

    def forward(self, x):
        f = self.backbone(pixel_values=x).pooler_output
        return torch.nn.functional.normalize(self.head(f), dim=1)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--gen", required=True, help="folder of the generated gRPC modules")
    ap.add_argument("--gallery", type=int, default=1000)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    sys.path.insert(0, a.gen)
    from handmatch.v1 import handmatch_pb2 as pb, handmatch_pb2_grpc as rpc

    torch.manual_seed(0)
    torch.set_num_threads(a.threads)
    model = Embedder().eval()
    rng = np.random.default_rng(0)
    gallery = rng.standard_normal((a.gallery, 256)).astype(np.float32)
    gallery /= np.linalg.norm(gallery, axis=1, keepdims=True)
    names = [f"s{i:06d}" for i in range(a.gallery)]

    class Service(rpc.HandMatchServicer):
        def GetInfo(self, request, context):
            return pb.InfoResponse(model_id="reference", backbone="dinov2-base (PyTorch eager)",
                                   embedding_dim=256, input_size=224, execution_provider="CPU",
                                   gallery_subjects=a.gallery)

        def Identify(self, request, context):
            t0 = time.perf_counter()
            x = torch.stack([study_transform(i.data) for i in request.images])
            t1 = time.perf_counter()
            with torch.inference_mode():
                e = model(x).mean(0).numpy()
            e /= np.linalg.norm(e)
            t2 = time.perf_counter()
            scores = gallery @ e
            k = min(request.top_k or 10, a.gallery)
            top = np.argpartition(-scores, k - 1)[:k]
            top = top[np.argsort(-scores[top])]
            return pb.IdentifyResponse(
                candidates=[pb.Candidate(subject_id=names[j], score=float(scores[j]), rank=r + 1)
                            for r, j in enumerate(top)],
                model_id="reference", gallery_subjects=a.gallery,
                timings=pb.Timings(decode_ms=(t1 - t0) * 1e3, embed_ms=(t2 - t1) * 1e3))

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=16),
                         options=[("grpc.max_receive_message_length", 64 << 20)])
    rpc.add_HandMatchServicer_to_server(Service(), server)
    server.add_insecure_port(f"127.0.0.1:{a.port}")
    server.start()
    print(f"reference stack serving on 127.0.0.1:{a.port}", flush=True)
    server.wait_for_termination()


if __name__ == "__main__":
    main()
