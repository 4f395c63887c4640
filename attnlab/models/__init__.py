"""Recurrent encoders, attention decoders and the Seq2Seq model."""

from attnlab.models.decoders import BRIDGES, DECODER_STYLES, Decoder, DecoderState
from attnlab.models.rnn import CELLS, Encoder, EncoderOutput, cell_names, make_cell
from attnlab.models.seq2seq import Seq2Seq
from attnlab.options import ModelOptions
