//! A step's layout on the device, uploaded once per forward pass into one buffer: token ids,
//! positions, each token's sequence, the sequences' block tables (flattened, with each
//! sequence's start), and the tokens the head computes.

use uma_model::backend::BatchLayout;

use crate::backend::GpuBackend;
use crate::pool::{PassId, PooledBuffer, Use};

/// The arrays of [`StepBuffers`], each a `u32` array at its own offset.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum StepArray {
    TokenIds,         // [num_tokens]
    Positions,        // [num_tokens]
    Sequences,        // [num_tokens]: the sequence of each token
    BlockTableStarts, // [num_sequences + 1]: sequence s's blocks are block_tables[starts[s]..starts[s+1]]
    BlockTables,      // [total blocks]
    OutputTokens,     // [num_output_rows]
}

const NUM_ARRAYS: usize = 6;

/// The step's arrays in one device buffer.
#[derive(Debug)]
pub(crate) struct StepBuffers {
    buffer: PooledBuffer,
    ranges: [(u64, u64); NUM_ARRAYS], // (byte offset, number of u32) of each array
}

impl StepBuffers {
    /// Uploads `layout` (written before the pass's first submission runs).
    pub(crate) fn upload(
        backend: &GpuBackend,
        pass: PassId,
        layout: &BatchLayout<'_>,
    ) -> StepBuffers {
        let places = layout.places();
        let mut starts = Vec::with_capacity(layout.block_tables().len() + 1);
        let mut tables = Vec::new();
        for table in layout.block_tables() {
            starts.push(tables.len() as u32);
            tables.extend(table.iter().map(|b| b.0));
        }
        starts.push(tables.len() as u32);
        let arrays: [Vec<u32>; NUM_ARRAYS] = [
            layout.token_ids().to_vec(),
            places.iter().map(|p| p.position as u32).collect(),
            places.iter().map(|p| p.sequence as u32).collect(),
            starts,
            tables,
            layout.output_tokens().iter().map(|&t| t as u32).collect(),
        ];
        let alignment = backend.context().storage_alignment.max(4);
        let mut bytes: Vec<u8> = Vec::new();
        let mut ranges = [(0u64, 0u64); NUM_ARRAYS];
        for (range, array) in ranges.iter_mut().zip(&arrays) {
            let offset = (bytes.len() as u64).next_multiple_of(alignment);
            bytes.resize(offset as usize, 0);
            bytes.extend_from_slice(bytemuck::cast_slice(array));
            // Every binding holds at least one element.
            bytes.resize(bytes.len().max(offset as usize + 4), 0);
            *range = (offset, array.len() as u64);
        }
        let buffer = backend.pool().take(bytes.len() as u64, pass, Use::Upload);
        backend.context().queue.write_buffer(buffer.buffer(), 0, &bytes);
        StepBuffers { buffer, ranges }
    }

    /// The binding of `array`.
    pub(crate) fn binding(&self, array: StepArray) -> wgpu::BufferBinding<'_> {
        let (offset, len) = self.ranges[array as usize];
        wgpu::BufferBinding {
            buffer: self.buffer.buffer(),
            offset,
            size: wgpu::BufferSize::new(len.max(1) * 4),
        }
    }
}
