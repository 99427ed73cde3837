// The families are defined once, in core, so both renderers expose the same names, types and help.
export {
  type ClusterAggregator,
  HISTOGRAM_FAMILIES,
  type HistogramFamily,
  METRIC_FAMILIES,
  REJECTIONS_FAMILY,
  SCALAR_FAMILIES,
  type ScalarFamily,
} from '@backpressure/core'
