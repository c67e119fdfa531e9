"""index runs by (user_id, status)

Every send-message counts the caller's queued/running runs (the concurrent-run limit). The
only index starting with user_id was the idempotency one, so that count read every run the
user ever made: O(history) per message. (user_id, status) makes it O(active runs).

Revision ID: 0002
Revises: 0001
"""
from alembic import op

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index('ix_runs_user_status', 'runs', ['user_id', 'status'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_runs_user_status', table_name='runs')
