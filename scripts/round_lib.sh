# Shared by the training-study scripts (finetune_round.sh, trunk_study.sh); sourced, not run.
# Expects PY and BT (the venv's python and blurtrack) and the repository root as the working folder.
GRID="--penalty-k 0.08,0.15,0.25 --window-influence 0.02,0.1 --lr 0.25,0.38,0.5"
# CONFIRM set: DEV images, another seed, three times the tuning set's 20 sequences; it chooses no
# setting, so its objective is an unbiased estimate where the grid's best is not
CONFIRM_SEED=1 CONFIRM_SEQUENCES=60
CONFIRM="--split dev --seed $CONFIRM_SEED --sequences $CONFIRM_SEQUENCES --frames 80"

# the synthetic training and DEV-pair sequences, rendered once before side-by-side training runs
render_training_data() {
  $PY -c "
from engine.data.synth import make_split
make_split('train', '/tmp/blurtrack-train/synth-train', n_sequences=100, seed=0, n_frames=60)
make_split('dev', '/tmp/blurtrack-train/synth-dev-train', n_sequences=8, seed=0, n_frames=60)"
}

# render the CONFIRM set once, before the side-by-side runs that read it
render_confirm() {
  $PY -c "
from engine.data.synth import shared_dir
from engine.evaluation import peers
from engine.evaluation.benchmark import DataSpec, prepare_data
prepare_data(DataSpec(name='dev', kind='synthetic', split='dev', sequences=$CONFIRM_SEQUENCES, frames=80, seed=$CONFIRM_SEED),
             peers.default_cache_dir(), shared_dir())"
}

# the bundle's tuned tracker settings as `blurtrack tune` flags, so a later stage keeps them fixed
chosen_settings() {
  $PY -c "
import sys; from engine.manifest import load_bundle
t = load_bundle(sys.argv[1]).manifest.tracker
print(f'--penalty-k {t.penalty_k} --window-influence {t.window_influence} --lr {t.lr}')" "$1"
}

# one bundle at its chosen settings (and gate) on the CONFIRM set: confirm_one BUNDLE DEBLUR JSON LOG
confirm_one() {
  $BT tune --bundle "$1" --deblur "$2" --threads 1 $(chosen_settings "$1") $CONFIRM --out "$3" > "$4" 2>&1
}
