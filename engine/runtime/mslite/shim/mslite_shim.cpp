// A C API over the MindSpore Lite 2.0 C++ API, for ctypes.
//
// Why: PyPI only has a CPython 3.7 wheel of mindspore-lite; its Python module cannot load in 3.11,
// but its native libraries can. This shim is built against them by `blurtrack setup mslite`:
//   g++ -std=c++17 -D_GLIBCXX_USE_CXX11_ABI=0 -shared -fPIC   (the libraries use GCC 7's old ABI)
// Every function returns an error code or NULL and never lets a C++ exception cross the C boundary;
// bt_last_error() returns the message of the last failure on the calling thread.
// Shapes are fixed after build (bundles use fixed input shapes); predict copies float32 buffers.

#include <cstdint>
#include <cstring>
#include <exception>
#include <memory>
#include <string>
#include <vector>

#if defined(__x86_64__) || defined(__i386__)
#include <xmmintrin.h>
#endif

#include "include/api/context.h"
#include "include/api/format.h"
#include "include/api/model.h"
#include "include/api/status.h"
#include "include/api/types.h"
#include "include/registry/converter_context.h"

namespace mindspore {
// libmindspore_converter.so exports this class but the wheel ships no header for it; declared from
// `nm -DC libmindspore_converter.so` and MindSpore's include/converter.h (one shared_ptr member).
class ConverterPara;
class Converter {
 public:
  Converter(converter::FmkType fmk_type, const std::vector<char> &model_file, const std::vector<char> &output_file,
            const std::vector<char> &weight_file);
  ~Converter() = default;
  void SetInputFormat(Format format);
  void SetSaveType(ModelType save_type);
  void SetNoFusion(bool no_fusion);
  void SetConfigFile(const std::vector<char> &config_file);
  Status Convert();

 private:
  std::shared_ptr<ConverterPara> data_;
};
}  // namespace mindspore

namespace {

thread_local std::string g_last_error;

struct TensorInfo {
  std::string name;
  std::vector<int64_t> shape;
  int64_t elements;
};

std::vector<TensorInfo> describe(const std::vector<mindspore::MSTensor> &tensors) {
  std::vector<TensorInfo> infos;
  for (const auto &t : tensors) infos.push_back({t.Name(), t.Shape(), t.ElementNum()});
  return infos;
}

std::vector<char> chars(const char *s) { return std::vector<char>(s, s + std::strlen(s)); }

int fail(const std::string &message) {
  g_last_error = message;
  return -1;
}

#if defined(__x86_64__) || defined(__i386__)
constexpr unsigned int kFlushToZero = 0x8000u, kDenormalsAreZero = 0x0040u;  // MXCSR mode bits
#endif

// Building a model turns on flush-to-zero and denormals-are-zero in the calling thread (loading the
// libraries does too, see bt_set_denormal_modes). Left on, they would change the caller's own float
// arithmetic (Python's floats lose their subnormals), so each entry point puts them back on return.
class KeepDenormalModes {
#if defined(__x86_64__) || defined(__i386__)
 public:
  KeepDenormalModes() : saved_(_mm_getcsr() & (kFlushToZero | kDenormalsAreZero)) {}
  ~KeepDenormalModes() { _mm_setcsr((_mm_getcsr() & ~(kFlushToZero | kDenormalsAreZero)) | saved_); }

 private:
  unsigned int saved_;
#endif
};

// Runs `body` with the caller's denormal modes kept, turning any C++ exception into -1 plus a message.
template <typename F>
int guarded(const char *where, F body) {
  KeepDenormalModes keep;
  try {
    return body();
  } catch (const std::exception &e) {
    return fail(std::string(where) + ": " + e.what());
  } catch (...) {
    return fail(std::string(where) + ": unknown C++ exception");
  }
}

}  // namespace

struct bt_model {
  mindspore::Model model;
  std::vector<TensorInfo> inputs, outputs;
};

extern "C" {

const char *bt_last_error(void) { return g_last_error.c_str(); }

// Sets the calling thread's denormal modes. Loading the wheel's libraries turns both on in the
// loading thread (a fast-math library among them), before any shim code runs; the loader calls
// this right after to put back what the thread had. Returns 0, or -1 on other architectures.
int bt_set_denormal_modes(int flush_to_zero, int denormals_are_zero) {
#if defined(__x86_64__) || defined(__i386__)
  unsigned int csr = _mm_getcsr() & ~(kFlushToZero | kDenormalsAreZero);
  if (flush_to_zero) csr |= kFlushToZero;
  if (denormals_are_zero) csr |= kDenormalsAreZero;
  _mm_setcsr(csr);
  return 0;
#else
  return -1;
#endif
}

// Builds a CPU model from a .ms file. Returns NULL on failure (see bt_last_error).
bt_model *bt_model_create(const char *ms_path, int threads) {
  bt_model *handle = nullptr;
  int rc = guarded("bt_model_create", [&]() -> int {
    auto context = std::make_shared<mindspore::Context>();
    context->SetThreadNum(threads);
    context->SetInterOpParallelNum(1);
    context->MutableDeviceInfo().push_back(std::make_shared<mindspore::CPUDeviceInfo>());
    auto m = std::make_unique<bt_model>();
    auto status = m->model.Build(std::string(ms_path), mindspore::kMindIR_Lite, context);
    if (status != mindspore::kSuccess) return fail("cannot build model " + std::string(ms_path) + ": " + status.ToString());
    m->inputs = describe(m->model.GetInputs());
    m->outputs = describe(m->model.GetOutputs());
    handle = m.release();
    return 0;
  });
  return rc == 0 ? handle : nullptr;
}

void bt_model_free(bt_model *m) {
  try {
    delete m;
  } catch (...) {
  }
}

int bt_model_num_inputs(const bt_model *m) { return static_cast<int>(m->inputs.size()); }
int bt_model_num_outputs(const bt_model *m) { return static_cast<int>(m->outputs.size()); }

// Name of input/output `index` (is_output 0/1); valid while the model lives. NULL if out of range.
const char *bt_model_tensor_name(const bt_model *m, int is_output, int index) {
  const auto &infos = is_output ? m->outputs : m->inputs;
  if (index < 0 || index >= static_cast<int>(infos.size())) return nullptr;
  return infos[index].name.c_str();
}

// Writes up to max_dims dims of input/output `index` into dims; returns the rank, or -1.
int bt_model_tensor_shape(const bt_model *m, int is_output, int index, int64_t *dims, int max_dims) {
  const auto &infos = is_output ? m->outputs : m->inputs;
  if (index < 0 || index >= static_cast<int>(infos.size())) return fail("tensor index out of range");
  const auto &shape = infos[index].shape;
  for (int i = 0; i < static_cast<int>(shape.size()) && i < max_dims; ++i) dims[i] = shape[i];
  return static_cast<int>(shape.size());
}

// inputs[i] holds input_elements[i] float32 values for input i (model order); outputs[i] has room
// for output_elements[i] values. Returns 0, or -1 with a message.
int bt_model_predict(bt_model *m, const float *const *inputs, const int64_t *input_elements, float *const *outputs,
                     const int64_t *output_elements) {
  return guarded("bt_model_predict", [&]() -> int {
    auto in_tensors = m->model.GetInputs();
    for (size_t i = 0; i < in_tensors.size(); ++i) {
      auto &t = in_tensors[i];
      if (t.DataType() != mindspore::DataType::kNumberTypeFloat32) return fail("input " + t.Name() + " is not float32");
      if (t.ElementNum() != input_elements[i])
        return fail("input " + t.Name() + " expects " + std::to_string(t.ElementNum()) + " values, got " +
                    std::to_string(input_elements[i]));
      std::memcpy(t.MutableData(), inputs[i], t.DataSize());
    }
    std::vector<mindspore::MSTensor> out_tensors;
    auto status = m->model.Predict(in_tensors, &out_tensors);
    if (status != mindspore::kSuccess) return fail("predict failed: " + status.ToString());
    if (out_tensors.size() != m->outputs.size()) return fail("predict returned an unexpected number of outputs");
    for (size_t i = 0; i < out_tensors.size(); ++i) {
      auto &t = out_tensors[i];
      if (t.DataType() != mindspore::DataType::kNumberTypeFloat32) return fail("output " + t.Name() + " is not float32");
      if (t.ElementNum() != output_elements[i])
        return fail("output " + t.Name() + " has " + std::to_string(t.ElementNum()) + " values, buffer holds " +
                    std::to_string(output_elements[i]));
      std::memcpy(outputs[i], t.Data().get(), t.DataSize());
    }
    return 0;
  });
}

// Converts an ONNX file to a MindSpore Lite model. The converter appends ".ms" to output_stem.
// Inputs stay NCHW as in the ONNX graph. no_fusion != 0 turns the fusion passes off (needed when a
// convolution weight is a graph input: the Siamese correlation crashes ConvConvFusion).
// config_file: the converter's INI config, "" for none; post-training quantisation is asked for
// there ([common_quant_param] quant_type=WEIGHT_QUANT or FULL_QUANT, ...).
int bt_convert_onnx(const char *onnx_path, const char *output_stem, int no_fusion, const char *config_file) {
  return guarded("bt_convert_onnx", [&]() -> int {
    mindspore::Converter converter(mindspore::converter::kFmkTypeOnnx, chars(onnx_path), chars(output_stem),
                                   std::vector<char>());
    converter.SetInputFormat(mindspore::NCHW);
    converter.SetSaveType(mindspore::kMindIR_Lite);
    converter.SetNoFusion(no_fusion != 0);
    if (config_file[0] != '\0') converter.SetConfigFile(chars(config_file));
    auto status = converter.Convert();
    if (status != mindspore::kSuccess) return fail("cannot convert " + std::string(onnx_path) + ": " + status.ToString());
    return 0;
  });
}

}  // extern "C"
