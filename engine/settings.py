"""Engine settings, read from `BLURTRACK_*` environment variables (pydantic-settings)."""

from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

REPO_ROOT = Path(__file__).resolve().parent.parent


class EngineSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="BLURTRACK_", extra="ignore")

    models_dir: Path = Field(REPO_ROOT / "models" / "weights", description="folder holding model bundles")
    bundle: str = Field("blurtrack-effnet-eca", description="default bundle name under models_dir")
    backend: str = Field("auto", description="auto | mslite | onnxruntime")
    threads: int = Field(2, ge=1, description="intra-op threads per model session")
    precision: Literal["auto", "fp32", "int8"] = Field(
        "auto", description="auto: each network at the precision its bundle chose for the runtime; fp32 or int8 for all"
    )
    mslite_home: Path = Field(
        Path.home() / ".cache" / "blurtrack" / "mslite",
        description="where `blurtrack setup mslite` unpacks MindSpore Lite and builds the shim",
    )


def get_engine_settings() -> EngineSettings:
    return EngineSettings()
