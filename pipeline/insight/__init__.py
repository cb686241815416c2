from pipeline.insight._analyze import analyze_archive, save_and_analyze
from pipeline.insight._model import Advice, ImageInsight, LayerInfo, WastedFile
