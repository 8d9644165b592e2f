"""Target encoding of identities (artists, album, genres) as a pyspark.ml Estimator/Model pair.

Who the artist is explains most of a track's popularity, but an artist id is not a number a model can
use, and a 2026 app gets no artist popularity. A target encoding turns each key into the mean label of
the training tracks that carry it, shrunk toward the prior (the mean label of all training tracks) as
scikit-learn's `TargetEncoder(smooth="auto")` does: the weight of a key's own mean is
`n * V / (n * V + v)`, with `n` its tracks, `v` the variance of their labels and `V` the label's variance.

* A column holds an array of keys (a track credits several artists, has several genres): the encoding
  is the mean and the max of its keys' encodings, and the mean `log1p` of how many training tracks
  each key has. A row without keys, and a key never seen in training, gets the prior and count 0.
* **Leakage-safe training rows**: a model fitted on rows whose own label is in their own encoding
  learns to trust the encoding too much. `transform_out_of_fold` encodes each training row with the
  statistics of the other folds only (folds by a seeded hash of the track id); the rest of the pipeline
  is fitted on those, and the encoder fitted on all training rows goes in front of it
  (`training.models.candidate_fitter`), so the `PipelineModel` scores a raw row (its key columns, no
  label, no id) with the full statistics.
* The model keeps its statistics (one row per column and key) and saves them as Parquet beside its
  params, so it persists inside a `PipelineModel` and with MLflow's Spark flavour. Scoring is plain
  Spark SQL, no Python UDF, so it runs on any cluster: per column, the distinct key sets of the rows are
  joined with the statistics and joined back, so its cost grows with the rows plus the keys. Small
  statistics (up to `MAP_KEYS` entries) are looked up in a map attached to each row instead, which needs
  fewer Spark jobs; its cost grows with the rows times the keys (at 100,000 tracks a cycle on maps alone
  did not finish).
"""

import os
from typing import Any

from pyspark import keyword_only
from pyspark.ml import Estimator, Model
from pyspark.ml.param import Param, Params, TypeConverters
from pyspark.ml.util import DefaultParamsReadable, DefaultParamsReader, DefaultParamsWritable, DefaultParamsWriter
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F  # noqa: N812

STATS_SCHEMA = "column STRING, key STRING, sum DOUBLE, sumsq DOUBLE, count DOUBLE"
STATISTICS = ("sum", "sumsq", "count")  # of a key's labels
ENTRY = "STRUCT<sum: DOUBLE, sumsq: DOUBLE, count: DOUBLE>"  # a key's statistics in the lookup maps
FOLD_SEPARATOR = "\u0001"
ENCODINGS = ("te", "te_max", "count_log")  # per column: mean encoding, max encoding, mean log1p(count)
# Up to this many statistics entries (keys of all columns; out of fold, each fold's apart), a map per row: at
# 2,000 tracks (about 700 keys, 3,500 out of fold) a third fewer Spark jobs than the joins; at 20,000 tracks
# the maps took 52 s to encode the training rows (35,000 entries) where the joins took 5.7 s, and 3.4 s to
# score them with the full statistics (7,400 entries) where the joins took 2.1 s.
MAP_KEYS = 5_000


def encoded_column(column: str, encoding: str) -> str:
    return f"{column}__{encoding}"


_OWNER = Params._dummy()  # noqa: SLF001 - how pyspark.ml declares the Params of a class


class _EncoderParams(Params):
    inputCols: "Param[list[str]]" = Param(  # noqa: N815 - pyspark.ml's naming
        _OWNER, "inputCols", "array<string> columns of keys", typeConverter=TypeConverters.toListString
    )
    labelCol: "Param[str]" = Param(  # noqa: N815
        _OWNER, "labelCol", "the label", typeConverter=TypeConverters.toString
    )
    idCol: "Param[str]" = Param(  # noqa: N815
        _OWNER, "idCol", "row id, for the out-of-fold split", typeConverter=TypeConverters.toString
    )
    folds: "Param[int]" = Param(_OWNER, "folds", "out-of-fold folds", typeConverter=TypeConverters.toInt)
    seed: "Param[int]" = Param(_OWNER, "seed", "seed of the fold split", typeConverter=TypeConverters.toInt)
    smoothing: "Param[float]" = Param(
        _OWNER,
        "smoothing",
        "shrinkage toward the prior: a number of pseudo-tracks, or -1 for scikit-learn's 'auto'",
        typeConverter=TypeConverters.toFloat,
    )

    mapKeys: "Param[int]" = Param(  # noqa: N815
        _OWNER,
        "mapKeys",
        "statistics of at most this many entries are looked up in a map attached to each row (no joins: cheaper "
        "for small tables); more are joined by key set (a map lookup costs rows x entries)",
        typeConverter=TypeConverters.toInt,
    )

    def __init__(self) -> None:
        super().__init__()
        self._setDefault(
            inputCols=[], labelCol="label", idCol="track_id", folds=5, seed=1, smoothing=-1.0, mapKeys=MAP_KEYS
        )

    def fold_column(self) -> Column:
        """Each row's fold: a seeded hash of its id, so a row is on the same fold on every run."""
        row_id = F.xxhash64(F.col(self.getOrDefault("idCol")), F.lit(self.getOrDefault("seed")))
        return F.pmod(row_id, F.lit(self.getOrDefault("folds")))


class TargetEncoder(Estimator["TargetEncoderModel"], _EncoderParams, DefaultParamsReadable[Any], DefaultParamsWritable):
    """Fits a `TargetEncoderModel`: per input column and key, the label's sum, sum of squares and count."""

    @keyword_only
    def __init__(
        self,
        *,
        inputCols: list[str] | None = None,  # noqa: N803
        labelCol: str = "label",  # noqa: N803
        idCol: str = "track_id",  # noqa: N803
        folds: int = 5,
        seed: int = 1,
        smoothing: float = -1.0,
        mapKeys: int = MAP_KEYS,  # noqa: N803
    ) -> None:
        super().__init__()
        self._set(**self._input_kwargs)  # type: ignore[attr-defined]  # set by keyword_only

    def _fit(self, dataset: DataFrame) -> "TargetEncoderModel":
        label = F.col(self.getOrDefault("labelCol")).cast("double")
        rows = dataset.where(label.isNotNull())
        prior = rows.agg(F.avg(label).alias("mean"), F.var_pop(label).alias("var")).first()
        assert prior is not None  # noqa: S101 - an aggregate always has a row
        keyed = [
            rows.select(
                F.lit(column).alias("column"),
                F.explode(F.array_distinct(F.col(column))).alias("key"),
                self.fold_column().alias("fold"),
                label.alias("y"),
            )
            for column in self.getOrDefault("inputCols")
        ]
        exploded = keyed[0]
        for more in keyed[1:]:
            exploded = exploded.unionByName(more)
        # Computed once here (a local checkpoint, removed with the model): every later transform, out of fold
        # or not, and the model's save read them instead of going back to the training rows.
        per_fold = (
            exploded.where(F.col("key").isNotNull())
            .groupBy("column", "key", "fold")
            .agg(
                F.sum("y").alias("sum"),
                F.sum(F.col("y") * F.col("y")).alias("sumsq"),
                F.count("*").cast("double").alias("count"),
            )
            .localCheckpoint()
        )
        totals = (
            per_fold.groupBy("column", "key").agg(*(F.sum(name).alias(name) for name in STATISTICS)).localCheckpoint()
        )
        others = per_fold.alias("f").join(totals.alias("t"), ["column", "key"])
        out_of_fold = others.select(
            "column",
            F.concat("key", F.lit(FOLD_SEPARATOR), F.col("fold").cast("string")).alias("key"),
            *((F.col(f"t.{name}") - F.col(f"f.{name}")).alias(name) for name in STATISTICS),
        ).where(F.col("count") > 0)
        model = TargetEncoderModel(
            stats=totals, prior=float(prior["mean"] or 0.0), variance=float(prior["var"] or 0.0), keys=totals.count()
        )
        model._out_of_fold = out_of_fold  # noqa: SLF001 - for transform_out_of_fold only, never saved
        return self._copyValues(model)


class TargetEncoderModel(Model, _EncoderParams, DefaultParamsReadable[Any], DefaultParamsWritable):
    """Adds `<column>__te`, `<column>__te_max` and `<column>__count_log` for each input column."""

    def __init__(
        self, stats: DataFrame | None = None, prior: float = 0.0, variance: float = 0.0, keys: int | None = None
    ) -> None:
        super().__init__()
        self.keys = keys  # rows of `stats` (None: unknown, as in a model saved before it was kept)
        self.stats = stats  # STATS_SCHEMA: one row per input column and key
        self.prior = prior
        self.variance = variance
        self._out_of_fold: DataFrame | None = None

    def _transform(self, dataset: DataFrame) -> DataFrame:
        return self._encode(dataset, self.stats, None)

    def transform_out_of_fold(self, dataset: DataFrame) -> DataFrame:
        """The training rows, each encoded with the other folds' statistics (its own label left out)."""
        return self._encode(dataset, self._out_of_fold, self.fold_column())

    def _encode(self, dataset: DataFrame, stats: DataFrame | None, fold: Column | None) -> DataFrame:
        if stats is None:
            raise ValueError("this TargetEncoderModel has no statistics: fit a TargetEncoder first")
        entries = None if self.keys is None else self.keys * (self.getOrDefault("folds") if fold is not None else 1)
        if entries is not None and entries <= self.getOrDefault("mapKeys"):
            return self._encode_with_maps(dataset, stats, fold)
        return self._encode_with_joins(dataset, stats, fold)

    def _encode_with_joins(self, dataset: DataFrame, stats: DataFrame, fold: Column | None) -> DataFrame:
        """Each row's key set per input column; per column, the encodings of each distinct key set (its keys
        joined with the statistics), joined back by key set. Hash joins, so the cost grows with the rows plus the
        keys, not with their product (as a map of every key attached to each row did: Spark also searches a
        map's keys one by one)."""
        columns = self.getOrDefault("inputCols")
        tags = [f"__keys_{i}" for i in range(len(columns))]
        tagged = dataset.withColumns(
            {tag: self._key_set(column, fold) for tag, column in zip(tags, columns, strict=True)}
        )
        encoded, prior = tagged, F.lit(self.prior)
        for tag, column in zip(tags, columns, strict=True):
            # Broadcast: one row per distinct key set, and the rows keep their order (a seeded model that samples
            # rows, as XGBoost's subsample does, then learns the same trees on every run).
            found = self._set_encodings(tagged.select(tag), stats, column)
            encoded = encoded.join(F.broadcast(found), tag, "left").withColumns(
                {
                    encoded_column(column, "te"): F.coalesce(F.col("te"), prior),
                    encoded_column(column, "te_max"): F.coalesce(F.col("te_max"), prior),
                    encoded_column(column, "count_log"): F.coalesce(F.col("count_log"), F.lit(0.0)),
                }
            )
            encoded = encoded.drop("te", "te_max", "count_log")
        return encoded.drop(*tags)

    def _encode_with_maps(self, dataset: DataFrame, stats: DataFrame, fold: Column | None) -> DataFrame:
        """Each row looks its keys up in one map per column (of every key's statistics), attached to every row:
        no joins, for statistics small enough that copying and searching a map per row costs less."""
        columns = self.getOrDefault("inputCols")
        encoded = dataset.crossJoin(F.broadcast(self._lookups(stats)))
        prior = F.lit(self.prior)
        for i, column in enumerate(columns):
            keys = self._key_set(column, fold)
            lookup = F.col(f"__map_{i}")
            found = F.transform(keys, lambda k: F.try_element_at(lookup, k))  # noqa: B023 - called right here
            values = F.transform(found, self._value)
            counts = F.transform(found, lambda v: F.log1p(F.coalesce(v["count"], F.lit(0.0))))
            size = F.size(keys)
            encoded = encoded.withColumns(
                {
                    encoded_column(column, "te"): F.when(size == 0, prior).otherwise(
                        F.aggregate(values, F.lit(0.0), lambda a, b: a + b) / size
                    ),
                    encoded_column(column, "te_max"): F.when(size == 0, prior).otherwise(F.array_max(values)),
                    encoded_column(column, "count_log"): F.when(size == 0, F.lit(0.0)).otherwise(
                        F.aggregate(counts, F.lit(0.0), lambda a, b: a + b) / size
                    ),
                }
            )
        return encoded.drop(*(f"__map_{i}" for i in range(len(columns))))

    def _lookups(self, stats: DataFrame) -> DataFrame:
        """One row: a map from key to statistics per input column, built by Spark from the statistics (a
        DataFrame, never a list on the driver: at a million tracks it would ride along in every task)."""
        entry = F.struct(*STATISTICS)
        empty = F.create_map().cast(f"MAP<STRING, {ENTRY}>")
        return stats.groupBy().agg(
            *(
                F.coalesce(
                    F.map_from_entries(F.collect_list(F.when(F.col("column") == column, F.struct("key", entry)))), empty
                ).alias(f"__map_{i}")
                for i, column in enumerate(self.getOrDefault("inputCols"))
            )
        )

    @staticmethod
    def _key_set(column: str, fold: Column | None) -> Column:
        """A row's distinct non-null keys of `column` (none: an empty set), suffixed with its fold out of fold."""
        keys = F.filter(
            F.array_distinct(F.coalesce(F.col(column), F.array().cast("array<string>"))), lambda k: k.isNotNull()
        )
        if fold is None:
            return keys
        return F.transform(keys, lambda k: F.concat(k, F.lit(FOLD_SEPARATOR), fold.cast("string")))

    def _set_encodings(self, sets: DataFrame, stats: DataFrame, column: str) -> DataFrame:
        """(its key set column, te, te_max, count_log) per distinct key set of `sets` (one column, of `column`'s
        keys): the mean and the max of its keys' encodings and the mean log1p of their counts (an empty set has
        no row: the caller gives it the prior and count 0)."""
        (tag,) = sets.columns
        found = F.when(F.col("count").isNotNull(), F.struct(*STATISTICS))  # null: a key never seen in training
        lookups = stats.where(F.col("column") == column).select("key", *STATISTICS)
        keys = sets.distinct().select(tag, F.explode(tag).alias("key"))
        return (
            keys.join(lookups, "key", "left")
            .groupBy(tag)
            .agg(
                F.avg(self._value(found)).alias("te"),
                F.max(self._value(found)).alias("te_max"),
                F.avg(F.log1p(F.coalesce(F.col("count"), F.lit(0.0)))).alias("count_log"),
            )
        )

    def _value(self, found: Column) -> Column:
        """A key's encoding from its statistics (null: an unseen key, the prior)."""
        prior = F.lit(self.prior)
        n = found["count"]
        mean = found["sum"] / n
        smoothing = self.getOrDefault("smoothing")
        if smoothing >= 0:
            shrunk = (found["sum"] + F.lit(smoothing) * prior) / (n + F.lit(smoothing))
        else:  # scikit-learn's "auto": empirical Bayes with the key's own label variance
            spread = F.greatest(found["sumsq"] / n - mean * mean, F.lit(0.0))
            weight = F.lit(self.variance) * n
            shrunk = F.when(weight + spread > 0, (weight * mean + spread * prior) / (weight + spread)).otherwise(mean)
        return F.when(found.isNull() | (n <= 0), prior).otherwise(shrunk)

    # --- persistence: params as metadata, the statistics as Parquet beside them ---

    def write(self) -> "_ModelWriter":
        return _ModelWriter(self)

    @classmethod
    def read(cls) -> "_ModelReader":
        return _ModelReader(cls)


class _ModelWriter(DefaultParamsWriter):
    def saveImpl(self, path: str) -> None:  # noqa: N802 - pyspark.ml's naming
        model: TargetEncoderModel = self.instance  # type: ignore[assignment]
        extra = {"prior": model.prior, "variance": model.variance, "keys": model.keys}
        DefaultParamsWriter.saveMetadata(model, path, self.sparkSession, extraMetadata=extra)
        if model.stats is None:
            raise ValueError("this TargetEncoderModel has no statistics to save: fit a TargetEncoder first")
        model.stats.coalesce(1).write.parquet(os.path.join(path, "data"))


class _ModelReader(DefaultParamsReader[Any]):
    def load(self, path: str) -> TargetEncoderModel:
        metadata = DefaultParamsReader.loadMetadata(path, self.sparkSession)
        model = TargetEncoderModel(
            stats=self.sparkSession.read.schema(STATS_SCHEMA).parquet(os.path.join(path, "data")),
            prior=float(metadata["prior"]),
            variance=float(metadata["variance"]),
            keys=metadata.get("keys"),
        )
        model._resetUid(metadata["uid"])  # noqa: SLF001 - as DefaultParamsReader does
        DefaultParamsReader.getAndSetParams(model, metadata)
        return model
