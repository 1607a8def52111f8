"""What a pickle may import: data tables, no logic beyond `judge()`.

Every callable a pickle imports (`GLOBAL`, `STACK_GLOBAL`, `INST`, an extension code) is named
`module.name` and judged in this order:

1. `ALLOWED` — exact `module.name` pairs that real writers put in their files (torch state dicts,
   numpy arrays, Trainer files, joblib/sklearn estimators, Lightning/omegaconf, fairseq). Never a
   prefix: `torch._utils._rebuild_tensor_v2` is allowed, `torch._utils.anything_else` is not.
2. `DANGEROUS` — dotted families: a name equal to one of them or below it (`os` covers `os.system`
   and `os.path.join`; `builtins.getattr` covers only that builtin). These run code, touch files,
   the network, processes, or import by name → critical.
3. `NESTED_LOADERS` — callables that load a nested pickle from bytes. Critical unless every call
   seen passed literal bytes that were themselves inspected (then their verdict counts).
4. Anything else → unknown → high.

A name whose dotted path reaches a dunder attribute (`__globals__`, `__subclasses__`, …) is a
gadget chain and critical whatever its module; so is an attribute path that walks into a dangerous
module through another module's namespace (`STACK_GLOBAL('torch', 'os.system')`).
"""

from __future__ import annotations

_TORCH_STORAGES = (
    "Double", "Float", "Half", "Long", "Int", "Short", "Char", "Byte", "Bool", "BFloat16",
    "ComplexDouble", "ComplexFloat", "QUInt8", "QInt8", "QInt32", "QUInt4x2", "QUInt2x4",
)
_TORCH_DTYPES = (
    "float16", "float32", "float64", "bfloat16", "half", "float", "double", "complex32",
    "complex64", "complex128", "cfloat", "cdouble", "uint8", "uint16", "uint32", "uint64",
    "int8", "int16", "int32", "int64", "short", "int", "long", "bool", "quint8", "qint8",
    "qint32", "quint4x2", "quint2x4", "float8_e5m2", "float8_e4m3fn", "float8_e5m2fnuz",
    "float8_e4m3fnuz", "float8_e8m0fnu", "float4_e2m1fn_x2", "bits8", "bits16",
)
_TORCH_REBUILDERS = (
    "_rebuild_tensor", "_rebuild_tensor_v2", "_rebuild_tensor_v3", "_rebuild_parameter",
    "_rebuild_parameter_with_state", "_rebuild_qtensor", "_rebuild_sparse_tensor",
    "_rebuild_meta_tensor_no_storage", "_rebuild_nested_tensor", "_rebuild_wrapper_subclass",
    "_rebuild_device_tensor_from_numpy", "_rebuild_device_tensor_from_cpu_tensor",
)
_TORCH = (
    [f"torch.{s}Storage" for s in _TORCH_STORAGES]
    + [f"torch.{s}Tensor" for s in ("Double", "Float", "Half", "Long", "Int", "Short", "Char",
                                     "Byte", "Bool", "BFloat16")]
    + [f"torch.{d}" for d in _TORCH_DTYPES]
    + [f"torch._utils.{f}" for f in _TORCH_REBUILDERS]
    + [
        "torch._tensor._rebuild_from_type_v2", "torch.Tensor", "torch._tensor.Tensor",
        "torch.nn.parameter.Parameter", "torch.Size", "torch.device",
        "torch.serialization._get_layout", "torch.storage.UntypedStorage",
        "torch.storage.TypedStorage", "torch.UntypedStorage", "torch.TypedStorage",
        "torch.strided", "torch.sparse_coo", "torch.sparse_csr", "torch._mkldnn",
        "torch.contiguous_format", "torch.channels_last", "torch.preserve_format",
        "torch.per_tensor_affine", "torch.per_channel_affine",
        "torch.per_channel_affine_float_qparams",
    ]
)
_NUMPY = [
    f"{root}.{leaf}"
    for root in ("numpy.core.multiarray", "numpy._core.multiarray")
    for leaf in ("_reconstruct", "scalar")
] + [
    "numpy.core.numeric._frombuffer", "numpy._core.numeric._frombuffer",
    "numpy.ndarray", "numpy.dtype", "numpy.memmap", "numpy.ma.core._mareconstruct",
    "numpy.ma.core.MaskedArray", "numpy.ma.MaskedArray",
    "numpy.random._pickle.__randomstate_ctor", "numpy.random._pickle.__bit_generator_ctor",
    "numpy.random._pickle.__generator_ctor", "numpy.random.mtrand.RandomState",
    "numpy.random._mt19937.MT19937", "numpy.random._pcg64.PCG64",
    "numpy.random._generator.Generator", "numpy.random.bit_generator.SeedSequence",
    # numpy >= 2 pickles a SeedSequence (default_rng) through Cython's generated unpickler
    "numpy.random.bit_generator.__pyx_unpickle_SeedSequence",
] + [f"numpy.dtypes.{t}DType" for t in (
    "Float16", "Float32", "Float64", "Int8", "Int16", "Int32", "Int64", "UInt8", "UInt16",
    "UInt32", "UInt64", "Bool", "Complex64", "Complex128", "Object", "Str", "Bytes", "Void")]
_STDLIB = [
    "collections.OrderedDict", "collections.Counter", "collections.defaultdict",
    "collections.deque", "_codecs.encode", "codecs.encode", "copyreg._reconstructor",
    "builtins.object", "builtins.set", "builtins.frozenset", "builtins.bytearray",
    "builtins.complex", "builtins.slice", "builtins.range", "builtins.int", "builtins.float",
    "builtins.str", "builtins.bytes", "builtins.list", "builtins.dict", "builtins.tuple",
    "builtins.bool", "datetime.datetime", "datetime.date", "datetime.time",
    "datetime.timedelta", "datetime.timezone", "decimal.Decimal", "fractions.Fraction",
    "pathlib.PosixPath", "pathlib.WindowsPath", "pathlib.PurePosixPath", "uuid.UUID",
    "argparse.Namespace", "typing.Any", "typing.Union", "typing.Optional", "typing.List",
    "typing.Dict", "typing.Tuple", "enum.Enum",
]
# What `Trainer` writes: training_args.bin is torch.save(TrainingArguments) (and the TRL / seq2seq
# subclasses), its enums and dataclasses; rng_state.pth holds python/numpy/torch RNG states.
_TRANSFORMERS = [
    "transformers.training_args.TrainingArguments",
    "transformers.training_args_seq2seq.Seq2SeqTrainingArguments",
    "transformers.training_args.OptimizerNames", "transformers.training_args.ParallelMode",
    "transformers.trainer_utils.IntervalStrategy", "transformers.trainer_utils.SaveStrategy",
    "transformers.trainer_utils.HubStrategy", "transformers.trainer_utils.SchedulerType",
    "transformers.trainer_utils.FSDPOption", "transformers.trainer_utils.EvaluationStrategy",
    "transformers.debug_utils.DebugOption", "transformers.trainer_pt_utils.AcceleratorConfig",
    "transformers.generation.configuration_utils.GenerationConfig",
    "transformers.utils.quantization_config.BitsAndBytesConfig",
    "transformers.utils.quantization_config.QuantizationMethod",
    "accelerate.utils.dataclasses.DistributedType",
    "accelerate.utils.dataclasses.DeepSpeedPlugin",
    "accelerate.utils.dataclasses.FullyShardedDataParallelPlugin",
    "accelerate.utils.dataclasses.DynamoBackend", "accelerate.utils.dataclasses.PrecisionType",
    "accelerate.utils.dataclasses.ComputeEnvironment",
    "accelerate.utils.dataclasses.SageMakerDistributedType",
    "accelerate.utils.dataclasses.GradientAccumulationPlugin",
    "accelerate.utils.dataclasses.DataLoaderConfiguration",
    "accelerate.utils.dataclasses.ProjectConfiguration",
    "accelerate.state.PartialState", "accelerate.state.AcceleratorState",
    "trl.trainer.sft_config.SFTConfig", "trl.trainer.dpo_config.DPOConfig",
    "trl.trainer.dpo_config.FDivergenceType", "trl.trainer.grpo_config.GRPOConfig",
    "trl.trainer.orpo_config.ORPOConfig", "trl.trainer.kto_config.KTOConfig",
    "trl.trainer.reward_config.RewardConfig", "trl.trainer.ppo_config.PPOConfig",
    "peft.utils.peft_types.PeftType", "peft.utils.peft_types.TaskType",
    "peft.tuners.lora.config.LoraConfig",
    # sentence-transformers >= 3 trains with Trainer and writes training_args.bin too
    *(f"sentence_transformers.{m}.{c}" for m in ("training_args", "base.training_args")
      for c in ("BatchSamplers", "MultiDatasetBatchSamplers")),
    "sentence_transformers.training_args.SentenceTransformerTrainingArguments",
    "sentence_transformers.base.training_args.BaseTrainingArguments",
    "sentence_transformers.cross_encoder.training_args.CrossEncoderTrainingArguments",
    "sentence_transformers.sparse_encoder.training_args.SparseEncoderTrainingArguments",
]
# joblib writes arrays through its wrapper; sklearn estimators are listed class by class.
_SKLEARN_CLASSES = {
    "linear_model._logistic": ("LogisticRegression", "LogisticRegressionCV"),
    "linear_model._base": ("LinearRegression",),
    "linear_model._ridge": ("Ridge", "RidgeClassifier", "RidgeCV"),
    "linear_model._coordinate_descent": ("Lasso", "ElasticNet", "LassoCV"),
    "linear_model._stochastic_gradient": ("SGDClassifier", "SGDRegressor"),
    "svm._classes": ("SVC", "SVR", "LinearSVC", "LinearSVR", "NuSVC"),
    "tree._classes": ("DecisionTreeClassifier", "DecisionTreeRegressor",
                      "ExtraTreeClassifier", "ExtraTreeRegressor"),
    "tree._tree": ("Tree",),
    "ensemble._forest": ("RandomForestClassifier", "RandomForestRegressor",
                         "ExtraTreesClassifier", "ExtraTreesRegressor"),
    "ensemble._gb": ("GradientBoostingClassifier", "GradientBoostingRegressor"),
    "ensemble._gb_losses": ("BinomialDeviance", "LeastSquaresError", "MultinomialDeviance"),
    "_loss.loss": ("HalfBinomialLoss", "HalfSquaredError", "HalfMultinomialLoss"),
    "_loss.link": ("LogitLink", "IdentityLink", "MultinomialLogit", "Interval"),
    "ensemble._weight_boosting": ("AdaBoostClassifier",),
    "neighbors._classification": ("KNeighborsClassifier",),
    "neighbors._regression": ("KNeighborsRegressor",),
    "naive_bayes": ("GaussianNB", "MultinomialNB", "BernoulliNB", "ComplementNB"),
    "pipeline": ("Pipeline", "FeatureUnion"),
    "preprocessing._data": ("StandardScaler", "MinMaxScaler", "RobustScaler", "MaxAbsScaler",
                            "Normalizer"),
    "preprocessing._label": ("LabelEncoder", "LabelBinarizer", "MultiLabelBinarizer"),
    "preprocessing._encoders": ("OneHotEncoder", "OrdinalEncoder"),
    "feature_extraction.text": ("TfidfVectorizer", "CountVectorizer", "TfidfTransformer"),
    "decomposition._pca": ("PCA",),
    "decomposition._truncated_svd": ("TruncatedSVD",),
    "cluster._kmeans": ("KMeans", "MiniBatchKMeans"),
    "impute._base": ("SimpleImputer",),
    "compose._column_transformer": ("ColumnTransformer",),
    "dummy": ("DummyClassifier", "DummyRegressor"),
}
_JOBLIB = [
    "joblib.numpy_pickle.NumpyArrayWrapper",
    "sklearn.externals.joblib.numpy_pickle.NumpyArrayWrapper",
] + [f"sklearn.{mod}.{cls}" for mod, classes in _SKLEARN_CLASSES.items() for cls in classes]
# Lightning checkpoints keep hyper-parameters as omegaconf containers; fairseq an argparse
# Namespace (above, with the stdlib).
_OMEGACONF = [
    "omegaconf.dictconfig.DictConfig", "omegaconf.listconfig.ListConfig",
    "omegaconf.base.ContainerMetadata", "omegaconf.base.Metadata",
] + [f"omegaconf.nodes.{n}" for n in (
    "AnyNode", "StringNode", "IntegerNode", "FloatNode", "BooleanNode", "EnumNode",
    "BytesNode", "PathNode", "ValueNode")] + [
    "pytorch_lightning.utilities.parsing.AttributeDict",
    "lightning.fabric.utilities.data.AttributeDict",
    "lightning_fabric.utilities.data.AttributeDict",
]

ALLOWED: frozenset[str] = frozenset(
    _TORCH + _NUMPY + _STDLIB + _TRANSFORMERS + _JOBLIB + _OMEGACONF)

# Families (exact name or anything below it, at a dot boundary).
DANGEROUS: frozenset[str] = frozenset([
    # processes, the interpreter, imports by name
    "os", "posix", "nt", "posixpath", "ntpath", "subprocess", "_posixsubprocess", "_winapi",
    "pty", "signal", "sys", "runpy", "pkgutil", "importlib", "imp", "zipimport", "code",
    "codeop", "marshal", "types", "ctypes", "_ctypes", "commands", "multiprocessing",
    "_multiprocessing", "threading", "_thread", "asyncio", "concurrent", "gc", "inspect",
    "pydoc", "pdb", "bdb", "trace", "timeit", "profile", "cProfile", "site", "sysconfig",
    "distutils", "setuptools", "pip", "venv", "ensurepip", "platform", "resource", "fcntl",
    "mmap", "shutil", "tempfile", "glob", "fileinput", "io.open", "_io.open", "codecs.open",
    "pathlib.Path.write_text", "pathlib.Path.write_bytes", "linecache", "webbrowser",
    "operator", "_operator", "functools.reduce", "functools.partial", "itertools.starmap",
    # network
    "socket", "_socket", "ssl", "requests", "urllib", "urllib2", "urllib3", "http", "httplib",
    "httpx", "aiohttp", "ftplib", "smtplib", "telnetlib", "xmlrpc", "socketserver", "poplib",
    "imaplib",
    # pickle-style loaders and code carriers
    "pickle", "_pickle", "cPickle", "pickletools", "shelve", "dill", "cloudpickle", "joblib.load",
    "numpy.load", "numpy.loadtxt", "numpy.fromfile", "numpy.lib.npyio", "numpy.testing",
    "numpy.f2py", "numpy.distutils", "torch.load", "torch.hub", "torch.serialization.load",
    "torch.jit", "torch.package", "torch.utils.cpp_extension", "torch._dynamo",
    "torch._inductor", "torch.utils.data.datapipes", "torch.fx.experimental",
    "keras.models.load_model", "tensorflow.keras.models.load_model", "tensorflow.io",
    "tensorflow.python.ops.gen_io_ops", "huggingface_hub.hf_hub_download",
    "transformers.dynamic_module_utils", "yaml.load", "yaml.unsafe_load", "jinja2",
    # builtins that run code, import, reach attributes or open files
    *(f"{b}.{n}" for b in ("builtins", "__builtin__") for n in (
        "exec", "eval", "compile", "getattr", "setattr", "delattr", "__import__", "open",
        "breakpoint", "input", "globals", "locals", "vars", "execfile", "apply", "reload")),
])

# Load a nested pickle from bytes: critical unless the bytes were literal and inspected too.
NESTED_LOADERS: frozenset[str] = frozenset(["torch.storage._load_from_bytes"])

# joblib reads raw array bytes inline after this object's BUILD (see opcodes.py).
JOBLIB_WRAPPERS: frozenset[str] = frozenset([
    "joblib.numpy_pickle.NumpyArrayWrapper",
    "sklearn.externals.joblib.numpy_pickle.NumpyArrayWrapper",
])

# Allowed as a class handed to an array rebuilder (how a pickled memmap names its type), but
# calling them opens a file read-write (numpy.memmap("~/.bashrc", mode="r+") and SETITEM writes
# into it): critical when a stream calls one or hands one to any other callable.
CALL_DANGEROUS: frozenset[str] = frozenset(["numpy.memmap"])
CLASS_TAKERS: frozenset[str] = frozenset(
    ["numpy.core.multiarray._reconstruct", "numpy._core.multiarray._reconstruct"])

# copyreg's extension registry is empty in CPython; a code we cannot resolve is judged unknown.
EXTENSION_CODES: dict[int, str] = {}


def _in_family(name: str, families: frozenset[str]) -> bool:
    parts = name.split(".")
    return any(".".join(parts[:i]) in families for i in range(1, len(parts) + 1))


def chain_reaches_danger(attr: str) -> bool:
    """A dotted attribute path (protocol 4 resolves `name` by getattr, part by part) that reaches
    a dangerous module through another one's namespace: `torch` + `os.system` is os.system."""
    parts = attr.split(".")
    return any(_in_family(".".join(parts[i:]), DANGEROUS) for i in range(len(parts)))


def judge(name: str) -> str:
    """"allowed" | "dangerous" | "nested" | "unknown" for one imported `module.name`."""
    if name in ALLOWED:
        return "allowed"
    if name in NESTED_LOADERS:
        return "nested"
    if _in_family(name, DANGEROUS):
        return "dangerous"
    if any(p.startswith("__") and p.endswith("__") and len(p) > 4 for p in name.split(".")[1:]):
        return "dangerous"
    return "unknown"
