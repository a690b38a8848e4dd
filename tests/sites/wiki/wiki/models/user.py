import hashlib
import os

from sqlalchemy import Text
from sqlalchemy.orm import Mapped, mapped_column

from .meta import Base


class User(Base):
    """ The SQLAlchemy declarative model class for a User object. """
    __tablename__ = 'users'
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(unique=True)
    role: Mapped[str]

    password_hash: Mapped[str | None] = mapped_column(Text)

    # The tutorial uses bcrypt; PBKDF2 from the standard library keeps this test site's deps small.
    def set_password(self, pw):
        salt = os.urandom(16)
        digest = hashlib.pbkdf2_hmac('sha256', pw.encode('utf8'), salt, 1000)
        self.password_hash = salt.hex() + '$' + digest.hex()

    def check_password(self, pw):
        if self.password_hash is not None:
            salt, _, expected = self.password_hash.partition('$')
            digest = hashlib.pbkdf2_hmac('sha256', pw.encode('utf8'), bytes.fromhex(salt), 1000)
            return digest.hex() == expected
        return False
