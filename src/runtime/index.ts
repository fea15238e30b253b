/**
 * The TRIPLEX runtime: everything that computes, with no dependency on VS Code. Notebook cells,
 * the `triplex` command line and plain Node tests all use it through this module.
 */
export { initCompute, computeReport, backendMemoryBytes } from './compute/backend';
export type { BackendChoice, BackendName, ComputeOptions, ComputeReport, EngineStatus } from './compute/backend';
export { createResNet18, normalizeImageNet, resnet18ParameterShapes, resnet18TensorsFrom } from './model/resnet18';
export type { ForwardMode, ResNet18, ResNet18Options } from './model/resnet18';
export { loadStateDict, readPytorchCheckpoint, readSafetensors, stripKeyPrefixes, WeightFileError } from './weights';
export type { HostTensor, StateDict } from './weights';
export { buildResNet18Onnx, readOnnxModel } from './onnx/resnet18Graph';
export { createOnnxEncoder, loadOnnxRuntime, onnxRuntimeStatus } from './onnx/engine';
export type { ImageEncoder, OnnxEncoderOptions } from './onnx/engine';
export { createTfjsResNet18Encoder } from './onnx/tfjsEncoder';
export { openSlideImage, ImageFileError } from './image/slideImage';
export type { SlideImage, SlideImageOptions } from './image/slideImage';
export { cropSpots, neighborMask, neighborView, spotCrop, toNormalizedFloat } from './image/crops';
export { preprocess, selectGenes } from './data/preprocess';
export type { PreprocessOptions, PreprocessedDataset, PreprocessingRecord } from './data/preprocess';
export { DataFileError } from './data/types';
export type { CountMatrix, Section, SpatialDataset, Spot } from './data/types';
export { openDatasetStore, writeDatasetStore } from './store/datasetStore';
export type { DatasetStore, StoreManifest } from './store/datasetStore';
export { extractFeatures, featuresDir } from './features/extract';
export type { ExtractOptions, ExtractSummary } from './features/extract';
export { writeSyntheticDataset } from './synthetic/generator';
export { evaluate, formatMetricsTable, highlyPredictiveGenes, metricsTables, slideMetrics, summarise, writeMetricsTables } from './eval/metrics';
export { bySection, groupedKFold, leaveOnePatientOut, makeFolds, parseFolds, validationSplit } from './eval/folds';
export type { Fold } from './eval/folds';
export { fitRidge, predictRidge } from './eval/ridgeProbe';
export { compareOnSlide, comparisonRuns, geneComparison } from './eval/slideComparison';
export { readDataset } from './data/read';
export { crossValidate, readPredictions, RunStopped } from './train/cv';
export type { CvOptions, CvResult, FoldResult } from './train/cv';
export { loadTrainingData } from './train/data';
export { trainFold, loadTrainedModel, predictSections } from './train/trainer';
export { inferReferenceModel, loadModelCheckpoint, readGeneList } from './train/referenceCheckpoint';
export type { CheckpointLoadOptions, LoadedCheckpoint } from './train/referenceCheckpoint';
export type { EpochRecord, TargetMode, TrainProgress, TrainResult } from './train/trainer';
export { triplexConfig, describeConfig } from './model/triplex/config';
export { isArrowTable, isRichOutput, richOutput, tableOutput } from './notebook/rich';
export type { RichOutput } from './notebook/rich';
export { geneMapOutput, imageOutput, metricsOutput, spotOutput, trainingCurveOutput } from './notebook/outputs';
export type { GeneMapOptions } from './notebook/outputs';
export { readArrowFile } from './store/arrow';
export { exportH5ad } from './store/h5adExport';
export type { H5adExportOptions, H5adExportSummary } from './store/h5adExport';
